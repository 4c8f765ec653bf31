"""The Retention role on PostgreSQL: one batch is one statement in one transaction (the
window, then the purge of what it holds), so every instance's intake goes on between
batches; the rows purged are locked as they are picked, so none changes state meanwhile,
and their hash-chain entries become tombstones in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from proxy.store.admin_filter import id_ceiling
from proxy.store.chain import Kind, attempt_ref
from proxy.store.postgres.chain_links import mark_purged_in
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q
from proxy.store.records import PurgeBatch, PurgeKind


async def tombstone(conn: PoolConnectionProxy, rows: Sequence[asyncpg.Record],
                    now: float) -> list[str]:
    """Mark what the hash chain holds of the purged ``rows`` (each request's entry and its
    attempts', ``"<id>/<n>"``) as purged, in the purge's transaction, so ``tenang audit
    verify`` keeps their hashes and no longer recomputes them; the request ids. Entries
    a bodies purge marked stay as they are."""
    ids = sorted({r["id"] for r in rows})
    attempts = sorted(attempt_ref(r["id"], r["number"]) for r in rows
                      if r["number"] is not None)
    await mark_purged_in(conn, Kind.REQUEST, ids, now)
    await mark_purged_in(conn, Kind.ATTEMPT, attempts, now)
    return ids


class PostgresRetention:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def purge(self, kind: PurgeKind, before: float, after_id: str | None,
                    limit: int, now: float) -> PurgeBatch:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                window = await conn.fetchrow(Q["retention_window"], after_id or "",
                                             id_ceiling(before), limit)
                assert window is not None
                last = window["last"]
                if last is None:
                    return PurgeBatch(0, None)
                if kind is PurgeKind.BODIES:
                    rows = await conn.fetch(Q["purge_bodies"], after_id or "", last, before,
                                            now)
                else:
                    rows = await conn.fetch(Q["purge_rows"], after_id or "", last, before)
                ids = await tombstone(conn, rows, now)
        return PurgeBatch(len(ids), last if window["size"] == limit else None)

    async def purged(self, request_ids: Sequence[str]) -> dict[str, float]:
        if not request_ids:
            return {}
        with translated():
            rows = await self._db.pool.fetch(Q["tombstones"], Kind.REQUEST.value,
                                             sorted(set(request_ids)))
        return {r["ref"]: r["purged_at"] for r in rows}

    async def count_purgeable(self, kind: PurgeKind, before: float) -> int:
        sql = Q["count_purgeable_bodies"] if kind is PurgeKind.BODIES \
            else Q["count_purgeable_rows"]
        with translated():
            return int(await self._db.pool.fetchval(sql, id_ceiling(before), before))
