"""The SendSlots role on PostgreSQL: one set of send slots per upstream for every
instance on the database (schema v8's send_slots, v11's live_waits).

``rate.max_concurrency`` across instances is slot leases, one row per slot number: a
take is one UPDATE of free rows below the limit (FOR UPDATE SKIP LOCKED, as claims do),
so concurrent takers never hold more than the limit and never wait on one another, and
a return is one UPDATE. The other way, counting in-flight requests under an advisory
lock at each claim, would also have to count live attempts (stored in flight by
intake's group insert, which cannot wait for a count), serialise every claim of an
upstream on the lock, and scan the requests table per claim; a slot row is touched only
by the send holding it. Each slot is a lease renewed with the requests' leases, so a
killed instance's slots come back when their lease runs out, as its requests do.

Live sends come first across instances through v11's live_waits: an instance whose
live send finds no slot marks itself waiting in the same statement (a short lease,
renewed at each of its polls), and a replay's take grants nothing while another
instance's mark runs, so the slot freed next goes to the live send's poll. The other
way considered, each relay capping itself at ``max_concurrency - 1`` while it saw live
traffic lately, needs no table but does not hold across instances: with two slots,
two instances' relays at one each still leave a third's live send nothing."""

from __future__ import annotations

from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q


class PostgresSendSlots:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._slots_made: set[tuple[str, int]] = set()  # (upstream, limit) whose rows exist

    @property
    def shared(self) -> bool:
        return True

    async def _make_slots(self, upstream: str, limit: int) -> None:
        if (upstream, limit) not in self._slots_made:
            await self._db.pool.execute(Q["make_send_slots"], upstream, limit)
            self._slots_made.add((upstream, limit))

    async def take_send_slots(self, upstream: str, owner: str, wanted: int, limit: int,
                              now: float, until: float) -> list[int]:
        with translated():
            await self._make_slots(upstream, limit)
            rows = await self._db.pool.fetch(Q["take_send_slots"], upstream, owner, wanted,
                                             limit, now, until)
        return sorted(int(r[0]) for r in rows)

    async def take_live_send_slot(self, upstream: str, owner: str, limit: int, now: float,
                                  until: float, waiting_until: float) -> int | None:
        with translated():
            await self._make_slots(upstream, limit)
            slot = await self._db.pool.fetchval(Q["take_live_send_slot"], upstream, owner,
                                                limit, now, until, waiting_until)
        return None if slot is None else int(slot)

    async def end_live_wait(self, upstream: str, owner: str) -> None:
        with translated():
            await self._db.pool.execute(Q["end_live_wait"], upstream, owner)

    async def renew_send_slots(self, upstream: str, owner: str, slots: list[int],
                               until: float) -> list[int]:
        with translated():
            rows = await self._db.pool.fetch(Q["renew_send_slots"], upstream, owner, slots,
                                             until)
        return sorted(int(r[0]) for r in rows)

    async def return_send_slots(self, upstream: str, owner: str, slots: list[int]) -> None:
        with translated():
            await self._db.pool.execute(Q["return_send_slots"], upstream, owner, slots)
