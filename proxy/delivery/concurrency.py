"""A lane's send slots: how many sends to its upstream may be out at once
(``rate.max_concurrency``), queued replays and live attempts alike.

A send holds one slot from before its request is claimed (or, live, stored) until its
result is recorded. Alone on its store (SQLite) a lane counts its slots in process, as it
always has. Instances sharing a store (PostgreSQL) lease the upstream's slots from the
store (``SendSlots.take_send_slots``), so together they have at most
``max_concurrency`` sends out, not N times it; the leases are renewed with the requests'
(``Lane.renewal``, whatever the lane waits for), so a killed instance's slots come back
after ``lease_s``.

Either way a slot is given back exactly once: by the delivery when it ends, or by whoever
took it when it was not used. A slot lost to a store error on the way back is not lost
for good: its lease runs out.

Live sends come first (``take_live``). A deadline-mode request finding every slot busy
(a backlog draining after an outage holds them all for minutes) waits for one up to its
deadline, the time the SIMRS would have waited for BPJS anyway, instead of being
answered 202 at once: staff at the counter need the SEP number now. While one of this
instance's live attempts waits, a slot given back here goes to it (the oldest waiting)
instead of becoming free, so the relay cannot take it again in between, and the lane
takes no slot meanwhile (``live_waiting``). A handed-over slot never stops being this
instance's (on a shared store its lease stays ours), so the count never exceeds
``max_concurrency``, and it stays ours exactly until the live send ends.

Across instances (a shared store) a slot freed by another instance is not handed over:
the waiting live attempt asks the store again every ``SHARED_RETRY_S``, and each of its
takes that finds none marks it waiting in the store for ``LIVE_MARK_S``
(``SendSlots.take_live_send_slot``), so the other instances' replays take no slot of
the upstream meanwhile and the next one freed is its. The mark is dropped when no live
attempt of this instance waits any more, or runs out by itself (a killed instance holds
the others' replays back ``LIVE_MARK_S`` at most). Capping each relay at
``max_concurrency - 1`` while live traffic was seen would need no store, but holds on one
instance only: two instances' relays at one slot each still leave a third's live send
nothing of two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from proxy.config import UpstreamConfig
from proxy.store.errors import StoreError
from proxy.store.protocols import SendSlots

log = logging.getLogger("tenang.relay")

# How often a lane with no free slot asks the store again: another instance's slot
# coming back wakes nobody here (this instance's own do). A fraction of a typical BPJS
# answer time; a lane asks only while it has work waiting for a slot.
SHARED_RETRY_S = 0.05
# How long a live attempt waiting for a slot keeps the other instances' replays off the
# upstream's slots after its last poll (it polls every SHARED_RETRY_S while it waits):
# ten polls, so a loaded instance keeps its mark, and a killed one holds the replays
# back half a second at most.
LIVE_MARK_S = 10 * SHARED_RETRY_S


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

    @property
    def live_waiting(self) -> bool:
        """A live attempt of this instance waits for a slot: the lane must not take one."""

    async def take_live(self, clock: Callable[[], float], lease_s: float,
                        budget_s: float) -> list[int]:
        """One slot for a live send, waiting up to ``budget_s`` for one (ahead of the
        lane); [] when none came in time."""


class LiveFirst:
    """What both kinds of slots share: this instance's live attempts waiting for a slot,
    oldest first, and the hand-over of slots given back to them."""

    # How often a waiting live attempt asks again for a slot freed outside this
    # instance (None: never, every slot comes back through ``give_back`` here).
    poll_s: float | None = None

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._waiters: deque[asyncio.Future[int]] = deque()

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def live_waiting(self) -> bool:
        return any(not f.done() for f in self._waiters)

    async def take(self, wanted: int, now: float, until: float) -> list[int]:
        raise NotImplementedError

    async def _free(self, slots: list[int]) -> None:
        raise NotImplementedError

    async def _take_live_one(self, now: float, until: float) -> list[int]:
        """One slot for a live send (which then waits for one when none is free)."""
        return await self.take(1, now, until)

    async def _live_wait_over(self) -> None:
        """No live attempt of this instance waits any more."""

    async def give_back(self, slots: list[int]) -> None:
        left = []
        for slot in slots:
            while self._waiters and self._waiters[0].done():
                self._waiters.popleft()  # timed out or cancelled meanwhile
            if self._waiters and slot in self._held:
                self._waiters.popleft().set_result(slot)  # still ours, now the live send's
            else:
                left.append(slot)
        await self._free(left)

    async def take_live(self, clock: Callable[[], float], lease_s: float,
                        budget_s: float) -> list[int]:
        now = clock()
        if budget_s <= 0:
            return [] if self.live_waiting else await self.take(1, now, now + lease_s)
        taken = [] if self.live_waiting else await self._take_live_one(now, now + lease_s)
        if taken:
            return taken
        loop = asyncio.get_running_loop()
        handed: asyncio.Future[int] = loop.create_future()
        self._waiters.append(handed)
        deadline = loop.time() + budget_s
        try:
            while not handed.done() and (left := deadline - loop.time()) > 0:
                await asyncio.wait([handed], timeout=left if self.poll_s is None
                                   else min(left, self.poll_s))
                if handed.done() or loop.time() >= deadline:
                    break
                # Not under the deadline's timeout: a store call cut short could take a
                # slot nobody knows of (back only after its lease).
                now = clock()
                polled = await self._take_live_one(now, now + lease_s)
                if polled and not handed.done():
                    handed.set_result(polled.pop())
                await self.give_back(polled)  # handed one meanwhile: the next waiter's
        except BaseException:
            if handed.done() and not handed.cancelled():
                await self.give_back([handed.result()])
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(handed)
            if not handed.done():
                handed.cancel()
            if not self.live_waiting:
                await self._live_wait_over()
        # Handed over at the very moment the budget ran out: used, not wasted.
        return [handed.result()] if handed.done() and not handed.cancelled() else []


class LocalSlots(LiveFirst):
    """One instance's own count: nobody else sends to this upstream from this store."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    async def take(self, wanted: int, now: float, until: float) -> list[int]:
        free = [n for n in range(self._limit) if n not in self._held][:max(0, wanted)]
        self._held.update(free)
        return free

    async def _free(self, slots: list[int]) -> None:
        self._held.difference_update(slots)

    async def renew(self, until: float) -> None:
        pass  # no lease: a process's count ends with it

    def wait_s(self, poll_interval_s: float) -> float:
        return poll_interval_s


class SharedSlots(LiveFirst):
    """The upstream's slots in the store, leased to this instance (``owner``)."""

    poll_s = SHARED_RETRY_S

    def __init__(self, upstream: UpstreamConfig, store: SendSlots, owner: str) -> None:
        super().__init__()
        self._name = upstream.name
        self._limit = upstream.rate.max_concurrency
        self._store = store
        self._owner = owner

    async def take(self, wanted: int, now: float, until: float) -> list[int]:
        if wanted <= 0:
            return []
        return self._new(await self._store.take_send_slots(self._name, self._owner, wanted,
                                                           self._limit, now, until))

    def _new(self, taken: list[int]) -> list[int]:
        """The slots of ``taken`` not already held here, now held. A slot of ours whose
        lease the store saw run out (its renewal came late) may come back while its send
        is still out: it stays that send's (leased to us anew, which only renews it), not
        a free one, which a lane finding nothing to claim would give back and so hand to
        another instance mid-send, or a live attempt would send a second request under."""
        fresh = [slot for slot in taken if slot not in self._held]
        self._held.update(fresh)
        return fresh

    async def _free(self, slots: list[int]) -> None:
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

    async def _take_live_one(self, now: float, until: float) -> list[int]:
        slot = await self._store.take_live_send_slot(self._name, self._owner, self._limit,
                                                     now, until, now + LIVE_MARK_S)
        return [] if slot is None else self._new([slot])

    async def _live_wait_over(self) -> None:
        try:
            await self._store.end_live_wait(self._name, self._owner)
        except StoreError as exc:  # the mark runs out by itself within LIVE_MARK_S
            log.warning("live wait of %s not ended: %s", self._name, exc)


def slots_for(upstream: UpstreamConfig, store: SendSlots | None, owner: str) -> Slots:
    """The store's slots when other instances share the store; else the lane's own count."""
    if store is not None and store.shared:
        return SharedSlots(upstream, store, owner)
    return LocalSlots(upstream.rate.max_concurrency)
