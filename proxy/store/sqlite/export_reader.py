"""Reading a SQLite store for an export (``tenang export``, the UI's export page): every
matching request with its attempts, oldest first, a page at a time.

It opens a connection of its own, read-only (``mode=ro``): the export never writes the
file, never creates one where the config points at nothing, and runs beside a serving
Tenang (WAL lets readers run beside the writer) as well as with Tenang stopped. The whole
export is one read transaction, so it is one consistent snapshot: what was committed
when it began, nothing committed during it. (While it runs, the WAL cannot be
checkpointed past that snapshot; it shrinks again once the export ends.)

Memory stays constant however many rows match: requests come in keyset pages by id (the
primary key, or ``requests_status (status, id)`` when a status is given) and the
attempts of a page in one query on the attempts' primary key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from proxy.store.admin_filter import id_ceiling, id_floor, refuse_unexported_fields
from proxy.store.chain import GENESIS, ChainHead
from proxy.store.records import RequestFilter, StoredAttempt, StoredRequest
from proxy.store.sealing import PLAINTEXT, Keyring
from proxy.store.sqlite import chain_rows
from proxy.store.sqlite.queries import QUERIES, with_ids, with_where
from proxy.store.sqlite.read_only import in_snapshot, open_read_only
from proxy.store.sqlite.rows import row_to_attempt, row_to_request
from proxy.store.sqlite.writer import translate

PAGE_SIZE = 500  # well under SQLite's 32,766 bound parameters (the attempts' IN list)

History = tuple[StoredRequest, list[StoredAttempt]]
T = TypeVar("T")

def _where(f: RequestFilter, after: str | None) -> tuple[list[str], list[Any]]:
    """One lower and one upper id bound (given two, SQLite may walk from the looser one),
    status on its index; upstream is checked row by row (``+``: an index on upstream
    would give the rows out of id order, and every page would sort the whole range)."""
    lowers = [b for b in (after, None if f.received_from is None else id_floor(f.received_from))
              if b is not None]
    clauses: list[tuple[str, Any]] = [
        ("status=?", None if f.status is None else f.status.value),
        ("id>?" if lowers and max(lowers) == after else "id>=?", max(lowers, default=None)),
        ("id<?", None if f.received_to is None else id_ceiling(f.received_to)),
        ("+upstream=?", f.upstream),
        # Exact receive-time bounds: an id range is only as fine as a millisecond.
        ("received_at>=?", f.received_from),
        ("received_at<?", f.received_to),
    ]
    used = [(c, v) for c, v in clauses if v is not None]
    return [c for c, _ in used], [v for _, v in used]


def _attempts(conn: sqlite3.Connection, ids: list[str],
              keys: Keyring) -> dict[str, list[StoredAttempt]]:
    found: dict[str, list[StoredAttempt]] = {}
    for row in conn.execute(with_ids(QUERIES["export_attempts"], len(ids)), ids):
        found.setdefault(row[0], []).append(row_to_attempt(row, keys))
    return found


def histories(path: Path, f: RequestFilter, *, page_size: int = PAGE_SIZE,
              busy_timeout_ms: int = 5_000,
              keys: Keyring = PLAINTEXT) -> Iterator[list[History]]:
    """The requests ``f`` matches (status, upstream, receive-time range; its other
    fields are not export filters and must be unset), oldest first, each with its
    attempts in order, ``page_size`` requests a page, bodies opened with ``keys``.
    Raises StoreError subclasses; the connection closes when the iterator ends or is
    closed."""
    refuse_unexported_fields(f)
    conn = open_read_only(path, busy_timeout_ms)
    try:
        conn.execute("BEGIN")  # one snapshot for the whole export
        after: str | None = None
        while True:
            where, params = _where(f, after)
            rows = conn.execute(with_where(QUERIES["export_requests"], where),
                                (*params, page_size)).fetchall()
            if not rows:
                return
            requests = [row_to_request(r, keys) for r in rows]
            attempts = _attempts(conn, [r.id for r in requests], keys)
            yield [(r, attempts.get(r.id, [])) for r in requests]
            if len(rows) < page_size:
                return
            after = requests[-1].id
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    finally:
        conn.close()


def chain_head_of(path: Path, busy_timeout_ms: int = 5_000) -> ChainHead:
    """The hash chain's head now (read after an export's last page, for its manifest)."""
    def head(conn: sqlite3.Connection) -> ChainHead:
        row = conn.execute(QUERIES["chain_head"]).fetchone()
        return ChainHead(0, GENESIS) if row is None else ChainHead(row[0], bytes(row[1]))

    return _reading(path, busy_timeout_ms, head)


def chain_head_at(path: Path, busy_timeout_ms: int = 5_000) -> Callable[[int], bytes | None]:
    """A look-up of the chain's head at a seq (None: no such entry), for
    ``export_manifest.verify_export``."""
    return lambda seq: _reading(path, busy_timeout_ms,
                                lambda conn: chain_rows.head_at(conn, seq))


def _reading(path: Path, busy_timeout_ms: int, read: Callable[[sqlite3.Connection], T]) -> T:
    try:
        return in_snapshot(path, busy_timeout_ms, read)
    except sqlite3.Error as exc:
        raise translate(exc) from exc
