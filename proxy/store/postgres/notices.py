"""The Notices role on PostgreSQL: one row per (condition, upstream), claimed by a
conditional upsert, so among instances racing to send one notification exactly one
wins (the others wait on the row's lock and then find it claimed)."""

from __future__ import annotations

from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q


class PostgresNotices:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_notice(self, condition: str, upstream: str, at: float,
                           window_s: float) -> bool:
        with translated():
            return await self._db.pool.fetchval(Q["claim_notice"], condition, upstream, at,
                                                window_s) is not None

    async def claim_all_clear(self, condition: str, upstream: str) -> bool:
        with translated():
            return await self._db.pool.fetchval(Q["claim_all_clear"], condition,
                                                upstream) is not None
