"""Reading a PostgreSQL store for an export (``tenang export``, the UI's export page):
every matching request with its attempts, oldest first, a page at a time; and the hash
chain's head for the export's manifest.

The export is one read-only REPEATABLE READ transaction on a connection of its own: one
consistent snapshot (what was committed when it began, nothing committed during it),
beside serving instances. Its requests come through one server-side cursor, a page of
``PAGE_SIZE`` rows per fetch, and each page's attempts in one query on the attempts'
primary key: memory stays constant however many rows match, on the client and on the
server.

The readers are synchronous iterators (``proxy.ops.export`` writes a page as it
arrives; the UI takes each page in a worker thread): the connection lives on an event
loop of the reader's own, run for each page by whichever thread asks for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from proxy.config import StoreConfig
from proxy.store.admin_filter import id_ceiling, id_floor, refuse_unexported_fields
from proxy.store.chain import GENESIS, ChainHead
from proxy.store.postgres.errors import translated
from proxy.store.postgres.pool import connect
from proxy.store.postgres.rows import row_to_attempt, row_to_request
from proxy.store.postgres.statements import Q
from proxy.store.records import RequestFilter, StoredAttempt, StoredRequest
from proxy.store.sealing import PLAINTEXT, Keyring

PAGE_SIZE = 500

History = tuple[StoredRequest, list[StoredAttempt]]
T = TypeVar("T")


def _params(f: RequestFilter) -> tuple[Any, ...]:
    return (None if f.status is None else f.status.value, f.upstream,
            None if f.received_from is None else id_floor(f.received_from),
            None if f.received_to is None else id_ceiling(f.received_to),
            f.received_from, f.received_to)


def histories(config: StoreConfig, f: RequestFilter, *, page_size: int = PAGE_SIZE,
              keys: Keyring = PLAINTEXT) -> Iterator[list[History]]:
    """The requests ``f`` matches (status, upstream, receive-time range; its other
    fields are not export filters and must be unset), oldest first, each with its
    attempts in order, ``page_size`` requests a page, bodies opened with ``keys``.
    Raises StoreError subclasses; the connection closes when the iterator ends or is
    closed."""
    refuse_unexported_fields(f)
    loop = asyncio.new_event_loop()

    def wait(step: Awaitable[T]) -> T:
        with translated():
            return loop.run_until_complete(step)

    try:
        conn = wait(connect(config))
        try:
            wait(conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            cursor = wait(conn.cursor(Q["export_requests"], *_params(f)))
            while rows := wait(cursor.fetch(page_size)):
                requests = [row_to_request(r, keys) for r in rows]
                attempts: dict[str, list[StoredAttempt]] = {}
                for row in wait(conn.fetch(Q["attempts_of_requests"],
                                           [r.id for r in requests])):
                    a = row_to_attempt(row, keys)
                    attempts.setdefault(a.request_id, []).append(a)
                yield [(r, attempts.get(r.id, [])) for r in requests]
                if len(rows) < page_size:
                    return
        finally:
            wait(conn.close())
    finally:
        loop.close()


async def _fetchrow(config: StoreConfig, sql: str, *args: Any) -> Any:
    conn = await connect(config)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


def _run(step: Coroutine[Any, Any, T]) -> T:
    with translated():
        return asyncio.run(step)


def chain_head_of(config: StoreConfig) -> ChainHead:
    """The hash chain's head now (read after an export's last page, for its manifest)."""
    row = _run(_fetchrow(config, Q["chain_head"]))
    return ChainHead(0, GENESIS) if row is None else ChainHead(row["seq"], bytes(row["head"]))


def chain_head_at(config: StoreConfig) -> Callable[[int], bytes | None]:
    """A look-up of the chain's head at a seq (None: no such entry), for
    ``export_manifest.verify_export``."""
    def at(seq: int) -> bytes | None:
        row = _run(_fetchrow(config, Q["chain_head_at"], seq))
        return None if row is None else bytes(row["head"])

    return at
