"""SQLite ``Retention``: old final requests lose their bodies, later their rows.

Each batch is one operation of the writer (``SqliteDb.write``): a window of at most
``limit`` requests by primary key, so a batch costs the same early and late in a walk of
a million rows, and intake's group commits run between batches instead of behind one
long purge. Dry runs walk the same windows on the reader connection.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.store.admin_filter import id_ceiling
from proxy.store.chain import Kind, attempt_ref
from proxy.store.records import PurgeBatch, PurgeKind
from proxy.store.sqlite.chain import mark_purged_in
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES, with_ids
from proxy.store.sqlite.writer import ChainedConnection

_PICK = {PurgeKind.BODIES: QUERIES["purgeable_bodies"],
         PurgeKind.ROWS: QUERIES["purgeable_rows"]}
# Dry runs count in larger windows: reads do not hold the writer.
_COUNT_WINDOW = 5_000


def _window(c: ChainedConnection, after_id: str | None, ceiling: str,
            limit: int) -> tuple[str | None, int]:
    last, size = c.execute(QUERIES["retention_window"],
                           (after_id or "", ceiling, limit)).fetchone()
    return last, size


def _purge(c: ChainedConnection, kind: PurgeKind, ids: Sequence[str], now: float) -> None:
    def run(sql: str, *params: object) -> None:
        c.execute(with_ids(sql, len(ids)), (*params, *ids))

    if kind is PurgeKind.BODIES:
        run(QUERIES["drop_request_bodies"], now)
        run(QUERIES["drop_attempt_bodies"])
        run(QUERIES["drop_callback_payloads"])
    else:  # the row's dependants first: they reference it
        run(QUERIES["delete_request_attempts"])
        run(QUERIES["delete_request_callbacks"])
        run(QUERIES["delete_requests"])


def tombstone(c: ChainedConnection, ids: Sequence[str], now: float) -> None:
    """Mark what the hash chain holds of ``ids`` (each request's entry and its attempts',
    ``"<id>/<n>"``) as purged, in the purge's transaction and before it (a row purge
    deletes the attempts this reads), so ``tenang audit verify`` keeps their hashes and
    no longer recomputes them. Entries a bodies purge marked stay as they are."""
    refs = [attempt_ref(request_id, number) for request_id, number in
            c.execute(with_ids(QUERIES["attempt_numbers"], len(ids)), tuple(ids))]
    mark_purged_in(c, Kind.REQUEST, ids, now)
    mark_purged_in(c, Kind.ATTEMPT, refs, now)


class SqliteRetention:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def purge(self, kind: PurgeKind, before: float, after_id: str | None,
                    limit: int, now: float) -> PurgeBatch:
        ceiling = id_ceiling(before)

        def batch(c: ChainedConnection) -> PurgeBatch:
            last, size = _window(c, after_id, ceiling, limit)
            if last is None:
                return PurgeBatch(0, None)
            ids = [r[0] for r in c.execute(_PICK[kind],
                                           (after_id or "", last, before))]
            if ids:
                tombstone(c, ids, now)
                _purge(c, kind, ids, now)
            return PurgeBatch(len(ids), last if size == limit else None)

        return await self._db.write(batch)

    async def purged(self, request_ids: Sequence[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        wanted = sorted(set(request_ids))
        for start in range(0, len(wanted), _COUNT_WINDOW):
            part = wanted[start:start + _COUNT_WINDOW]
            found.update((r[0], r[1]) for r in await self._db.read(
                with_ids(QUERIES["tombstones"], len(part)), (Kind.REQUEST.value, *part)))
        return found

    async def count_purgeable(self, kind: PurgeKind, before: float) -> int:
        ceiling = id_ceiling(before)
        total, after_id = 0, ""
        while True:
            rows = await self._db.read(QUERIES["retention_window"],
                                       (after_id, ceiling, _COUNT_WINDOW))
            last, size = rows[0]
            if last is None:
                return total
            total += len(await self._db.read(_PICK[kind], (after_id, last, before)))
            if size < _COUNT_WINDOW:
                return total
            after_id = last
