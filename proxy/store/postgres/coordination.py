"""The Coordination role on PostgreSQL: one breaker and one send rate per upstream for
every instance on the database (schema v3's breakers and send_rates rows; the send slots
are ``send_slots``)."""

from __future__ import annotations

import asyncpg

from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q
from proxy.store.records import BreakerRecord


def _breaker(r: asyncpg.Record | None) -> BreakerRecord | None:
    return None if r is None else BreakerRecord(*r)


class PostgresCoordination:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def shared(self) -> bool:
        return True

    async def breaker(self, upstream: str) -> BreakerRecord:
        with translated():
            found = _breaker(await self._db.pool.fetchrow(Q["breaker"], upstream))
            if found is None:
                # Another instance made the row in the same instant: our INSERT waited for
                # its commit and did nothing, and our SELECT's snapshot predates it. A
                # second statement's snapshot sees it.
                found = _breaker(await self._db.pool.fetchrow(Q["breaker"], upstream))
        assert found is not None
        return found

    async def move_breaker(self, upstream: str, generation: int, state: str,
                           opened_at: float | None) -> BreakerRecord | None:
        with translated():
            return _breaker(await self._db.pool.fetchrow(Q["move_breaker"], upstream,
                                                         generation, state, opened_at))

    async def lease_probe(self, upstream: str, owner: str, now: float,
                          reset_timeout_s: float, until: float) -> BreakerRecord | None:
        with translated():
            return _breaker(await self._db.pool.fetchrow(Q["lease_probe"], upstream, owner,
                                                         now, reset_timeout_s, until))

    async def take_send_tokens(self, upstream: str, wanted: int, now: float,
                               per_second: float, burst: float) -> int:
        with translated():
            granted = await self._db.pool.fetchval(Q["take_send_tokens"], upstream, wanted,
                                                   now, per_second, burst)
            if granted is None:  # the first take: make the (full) bucket, then take
                await self._db.pool.execute(Q["make_send_rate"], upstream, burst, now)
                granted = await self._db.pool.fetchval(Q["take_send_tokens"], upstream,
                                                       wanted, now, per_second, burst)
        return int(granted)

    async def return_send_tokens(self, upstream: str, count: int, burst: float) -> None:
        with translated():
            await self._db.pool.execute(Q["return_send_tokens"], upstream, count, burst)
