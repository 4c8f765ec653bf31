"""A lane's send slots: how many sends to its upstream may be out at once
(``rate.max_concurrency``), queued replays and live attempts alike.

A send holds one slot from before its request is claimed (or, live, stored) until its
result is recorded. Alone on its store (SQLite) a lane counts its slots in process, as it
always has. Instances sharing a store (PostgreSQL) lease the upstream's slots from the
store (``Coordination.take_send_slots``), so together they have at most
``max_concurrency`` sends out, not N times it; the leases are renewed with the requests'
(the lane's housekeeping), so a killed instance's slots come back after ``lease_s``.

Either way a slot is given back exactly once: by the delivery when it ends, or by whoever
took it when it was not used. A slot lost to a store error on the way back is not lost
for good: its lease runs out.
"""

from __future__ import annotations

import logging
from typing import Protocol

from proxy.config import UpstreamConfig
from proxy.store.errors import StoreError
from proxy.store.protocols import Coordination

log = logging.getLogger("tenang.relay")

# How often a lane with no free slot asks the store again: another instance's slot
# coming back wakes nobody here (this instance's own do). A fraction of a typical BPJS
# answer time; a lane asks only while it has work waiting for a slot.
SHARED_RETRY_S = 0.05


class Slots(Protocol):
    @property
    def held(self) -> int:
        """Slots this instance holds for the upstream."""

    async def take(self, wanted: int, now: float, until: float) -> list[int]:
        """Up to ``wanted`` free slots, held until ``until`` unless renewed; their numbers."""

    async def give_back(self, slots: list[int]) -> None:
        """Slots taken and done with (the send ended, or never started)."""

    async def renew(self, until: float) -> None:
        """Keep every slot held until ``until`` (sends still out)."""

    def wait_s(self, poll_interval_s: float) -> float:
        """Longest wait after a take that granted nothing (a give-back here wakes it)."""


class LocalSlots:
    """One instance's own count: nobody else sends to this upstream from this store."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held: set[int] = set()

    @property
    def held(self) -> int:
        return len(self._held)

    async def take(self, wanted: int, now: float, until: float) -> list[int]:
        free = [n for n in range(self._limit) if n not in self._held][:max(0, wanted)]
        self._held.update(free)
        return free

    async def give_back(self, slots: list[int]) -> None:
        self._held.difference_update(slots)

    async def renew(self, until: float) -> None:
        pass  # no lease: a process's count ends with it

    def wait_s(self, poll_interval_s: float) -> float:
        return poll_interval_s


class SharedSlots:
    """The upstream's slots in the store, leased to this instance (``owner``)."""

    def __init__(self, upstream: UpstreamConfig, store: Coordination, owner: str) -> None:
        self._name = upstream.name
        self._limit = upstream.rate.max_concurrency
        self._store = store
        self._owner = owner
        self._held: set[int] = set()

    @property
    def held(self) -> int:
        return len(self._held)

    async def take(self, wanted: int, now: float, until: float) -> list[int]:
        if wanted <= 0:
            return []
        taken = await self._store.take_send_slots(self._name, self._owner, wanted,
                                                  self._limit, now, until)
        self._held.update(taken)
        return taken

    async def give_back(self, slots: list[int]) -> None:
        # Forgotten here first: a return cut short (cancelled, a store error) must not
        # leave the slot renewed for ever; its lease runs out instead.
        self._held.difference_update(slots)
        if not slots:
            return
        try:
            await self._store.return_send_slots(self._name, self._owner, slots)
        except StoreError as exc:
            log.warning("send slots %s of %s not returned (back after their lease): %s",
                        slots, self._name, exc)

    async def renew(self, until: float) -> None:
        if not self._held:
            return
        held = sorted(self._held)
        renewed = await self._store.renew_send_slots(self._name, self._owner, held, until)
        # Not renewed and still held (not given back meanwhile): this instance stalled
        # past a lease and another took the slot, so for a while one send more than the
        # limit is out. Not ours to take back; forgotten so it is not renewed again.
        lost = self._held.intersection(held).difference(renewed)
        if lost:
            self._held.difference_update(lost)
            log.warning("send slots %s of %s were taken over after their lease",
                        sorted(lost), self._name)

    def wait_s(self, poll_interval_s: float) -> float:
        return min(SHARED_RETRY_S, poll_interval_s)


def slots_for(upstream: UpstreamConfig, store: Coordination | None, owner: str) -> Slots:
    """The store's slots when other instances share the store; else the lane's own count."""
    if store is not None and store.shared:
        return SharedSlots(upstream, store, owner)
    return LocalSlots(upstream.rate.max_concurrency)
