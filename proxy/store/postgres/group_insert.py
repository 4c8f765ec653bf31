"""Intake's group commit on PostgreSQL.

Every request waiting to be stored joins the next batch: one ``insert_requests``
statement (one round trip, one commit, one WAL flush, one count update) for all of them,
which also appends the hash chain's entries of those stored (their leaves computed here
as each request arrives; queries.sql says how the statement locks the chain's head),
several batches at once on the pool (``parallel`` connections at most), so a 202 still
means committed and intake is not one round trip per request.

A batch that fails for a reason of its own rows (a value the server refuses, a taken id)
is split in halves, each committed again, down to the row at fault: one bad row among
1,024 costs about 20 statements, not 1,024, and only that row fails. A failure that no
row causes (the connection lost, the server's disk full) fails the whole batch at once:
a retry of any part of it could only fail again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from proxy.store import chain
from proxy.store.errors import StoreFull, StoreUnavailable
from proxy.store.postgres.errors import translated
from proxy.store.postgres.rows import insert_arrays
from proxy.store.postgres.statements import Q
from proxy.store.records import NewRequest
from proxy.store.sealing import PLAINTEXT, Keyring

MAX_BATCH = 1024


@dataclass(slots=True)
class _Waiting:
    request: NewRequest
    # Computed as the request arrives, not in a burst of a whole batch at commit; None
    # with the chain off ([audit] chain = false).
    link: chain.Link | None
    stored: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupInsert:
    """Inserts of new requests, batched. ``insert`` resolves once the row is committed
    (True) or its dedup key was found taken (False)."""

    def __init__(self, pool: asyncpg.Pool, parallel: int, *, chained: bool = True,
                 keys: Keyring = PLAINTEXT) -> None:
        self._pool = pool
        self._chained = chained
        self._keys = keys  # bodies are sealed under these
        self._parallel = max(1, parallel)
        self._waiting: list[_Waiting] = []
        self._running: set[asyncio.Task[None]] = set()
        self._kicked = False
        self._closed = False

    async def insert(self, request: NewRequest) -> bool:
        if self._closed:
            raise StoreUnavailable("store is closed")
        waiting = _Waiting(request, chain.request_link(request) if self._chained else None)
        self._waiting.append(waiting)
        self._kick()
        return await waiting.stored

    def _kick(self) -> None:
        # After the current step of the event loop: every request that arrives in it
        # joins the same batch.
        if not self._kicked:
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._kicked = False
        while self._waiting and len(self._running) < self._parallel:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            task = asyncio.get_running_loop().create_task(self._commit(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._waiting:
            self._start()

    async def _commit(self, batch: Sequence[_Waiting]) -> None:
        try:
            stored = await self._insert(batch)
        except (StoreUnavailable, StoreFull) as exc:  # not one row's fault: all fail
            _fail(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            # A row's own fault: bisect to it. One half after the other, so the batch
            # holds one connection at a time, as ``parallel`` counts it.
            half = len(batch) // 2
            await self._commit(batch[:half])
            await self._commit(batch[half:])
            return
        for w in batch:
            if not w.stored.done():
                w.stored.set_result(w.request.id in stored)

    async def _insert(self, batch: Sequence[_Waiting]) -> set[str]:
        with translated():
            rows = await self._pool.fetch(Q["insert_requests"],
                                          *insert_arrays([w.request for w in batch],
                                                         [w.link for w in batch if w.link],
                                                         self._keys))
        return {r["id"] for r in rows}

    async def close(self) -> None:
        """Commit what is waiting, then refuse new inserts."""
        self._closed = True
        while self._running or self._waiting:
            self._start()
            await asyncio.gather(*self._running, return_exceptions=True)


def _fail(batch: Sequence[_Waiting], exc: BaseException) -> None:
    for w in batch:
        if not w.stored.done():
            w.stored.set_exception(exc)
