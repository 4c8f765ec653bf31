"""The relay: one lane per upstream claims due requests under a lease and delivers them.

Each lane asks the breaker for permission before claiming (one probe while half-open),
paces claims (``pacing``: its own token bucket, or the store's one for all instances)
and caps concurrent sends (``concurrency``: its own count, or the store's slots for all
instances). Nothing sleeps between attempts in memory: the schedule is
``next_attempt_at`` in the store, and lanes wake on new work, on their next due time,
or after ``poll_interval_s`` at the latest.

Whatever a lane waits for (a free slot, the breaker's next probe, the rate's next token,
``poll_interval_s`` itself), the leases of its work in flight (claimed replays, live
attempts, the send slots they hold) are renewed by a loop of their own
(``Lane.renewal``), every third of a lease at most, and until the last send has ended
at shutdown: a send that outlives its lease (a timeout and then a reconciliation read
take about twice ``timeout_s``) is never taken over by another instance and sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import aiohttp

from proxy.bpjs.presets import orders_requests
from proxy.config import Config, UpstreamConfig
from proxy.delivery.attempt import Deliverer
from proxy.delivery.concurrency import Slots, slots_for
from proxy.delivery.live import LiveAttempt
from proxy.delivery.outcome_log import DeliveryLog
from proxy.delivery.pacing import Pacer, pacer_for
from proxy.observe.observer import NULL_OBSERVER, Observer
from proxy.periodic import Periodic
from proxy.policies.breaker import AsyncBreaker, Permit
from proxy.store.errors import StoreError
from proxy.store.protocols import Coordination, RequestQueue, SendSlots

log = logging.getLogger("tenang.relay")


class Lane:
    def __init__(self, deliverer: Deliverer, config: Config, clock: Callable[[], float],
                 pacer: Pacer, slots: Slots) -> None:
        self.d = deliverer
        self.up: UpstreamConfig = deliverer.upstream
        self.relay_cfg = config.relay
        self.clock = clock
        self.pacer = pacer
        self.slots = slots
        self.ordered = orders_requests(self.up.preset, self.up.overrides)
        self.wakeup = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.delivering: set[str] = set()  # ids of the requests those tasks are sending
        # Ids of live requests stored (or being stored) leased to this lane whose send has
        # not started yet (proxy/delivery/live.py): ours as much as ``delivering``.
        self.leased: set[str] = set()
        self.stopping = False
        # Only a lane idle for lack of work is woken by intake; one waiting for the
        # breaker, for tokens or for a free slot would only spin.
        self.waiting_for_work = False
        self._next_takeover = 0.0
        self._wait_s = 0.0  # how long a step that started nothing waits
        self._found_work = True  # the last claim found something due
        self.renewal = Periodic(f"relay-leases-{self.up.name}", self._renew_all,
                                lambda: self.renew_every_s, log, expected=(StoreError,),
                                failed=f"relay lane {self.up.name}: leases not renewed "
                                       "(tried again shortly)")

    @property
    def lease_s(self) -> float:
        return self.d.lease_s

    @property
    def renew_every_s(self) -> float:
        """How often the leases of this lane's work in flight are renewed: as often as
        its housekeeping used to (``poll_interval_s``), and at least three times a
        lease, so one renewal lost to the store still leaves another before it expires."""
        return min(self.relay_cfg.poll_interval_s, self.lease_s / 3)

    @property
    def free_slots(self) -> int:
        """``rate.max_concurrency`` less the slots this instance holds (sends in flight,
        live ones included, and those being claimed or stored). Other instances on a
        shared store may hold the rest."""
        return self.up.rate.max_concurrency - self.slots.held

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.step()
            except StoreError as exc:
                log.error("relay lane %s: store error: %s", self.up.name, exc)
                await self._idle(self.relay_cfg.poll_interval_s)
            except Exception:
                # A bug must not silently stop deliveries to this upstream for good.
                log.exception("relay lane %s: unexpected error; carrying on", self.up.name)
                await self._idle(self.relay_cfg.poll_interval_s)

    async def step(self) -> int:
        """Claim and start one batch; wait when there is nothing to do. Returns claimed."""
        now = self.clock()
        # Housekeeping once per poll interval, not per claim: both scan more than a
        # claim does (expired leases; requests to hold behind, or release from, a stuck one).
        if now >= self._next_takeover:
            self._next_takeover = now + self.relay_cfg.poll_interval_s
            await self._take_over_expired(now)
            if self.ordered:
                for held in await self.d.store.refresh_holds(self.up.name, now):
                    self.d.observer.finished(self.up.name, held.id, held.status,
                                             held.reason or "")
        try:
            started = await self._claim_and_start(now)
            if started is not None:
                return started
            await self._idle(self._wait_s)
            return 0
        finally:
            self.waiting_for_work = False

    async def _claim_and_start(self, now: float) -> int | None:
        """Claim requests and start each under a send slot of its own: how many, or None
        when none could be (the lane then waits ``_wait_s``). The breaker's permit, the
        send rate's tokens and the slots are taken in that order, cheapest first: a lane
        held back by the rate (the busy case) asks nothing of the slots. While a live
        attempt of this instance waits for a slot, the lane takes none: the SIMRS is
        waiting for that one, nobody for a replay (it is woken when the wait ends)."""
        if self.slots.live_waiting:
            self._wait_s = self.relay_cfg.poll_interval_s
            return None
        permit = self.d.breaker.try_acquire()
        if permit is None:
            probe_at = self.d.breaker.probe_at
            self._wait_s = max(0.0, (probe_at or 0) - self.clock()) or 0.05
            return None
        # A lane that found nothing last time looks under one token and one slot, not a
        # batch: meanwhile the other slots stay free for live attempts (and instances).
        batch = self.relay_cfg.claim_batch if self._found_work else 1
        try:
            want = await self.pacer.take(1 if permit.probe else batch)
        except BaseException:
            self.d.breaker.cancel(permit)
            raise
        if want == 0:
            self.d.breaker.cancel(permit)
            self._wait_s = self.pacer.wait_s()
            return None
        try:
            slots = await self.slots.take(want, now, now + self.lease_s)
        except BaseException:
            self.d.breaker.cancel(permit)
            await self.pacer.give_back(want)
            raise
        if not slots:
            self.d.breaker.cancel(permit)
            await self.pacer.give_back(want)
            # Woken when one of ours comes back; another instance's is seen by asking again.
            self._wait_s = self.slots.wait_s(self.relay_cfg.poll_interval_s)
            return None
        try:
            return await self._claim(now, permit, want, slots)
        finally:
            # Those not handed to a send (spawn takes them out), before any wait: a slot
            # kept idle is one no live attempt, nor another instance, can use.
            await self.release(slots, wake=False)

    async def _claim(self, now: float, permit: Permit, want: int,
                     slots: list[int]) -> int | None:
        """Claim up to ``len(slots)`` (of ``want`` tokens taken) and start them."""
        # A probe prefers a request with no own-fault history: one refused for its own
        # credentials would only re-open the breaker and starve the rest.
        try:
            claimed = await self.d.store.claim_due(self.up.name, now, len(slots),
                                                   self.d.owner, now + self.lease_s,
                                                   probe=permit.probe)
        except BaseException:
            # Nothing claimed: a probe kept here would stop every send to this upstream.
            self.d.breaker.cancel(permit)
            await self.pacer.give_back(want)
            raise
        surplus = want - len(claimed)
        if not claimed:
            self.d.breaker.cancel(permit)
            await self.pacer.give_back(surplus)
            self._found_work = False
            self.waiting_for_work = True  # from here: new work committed meanwhile wakes it
            self._wait_s = await self._until_due(now)
            return None
        self._found_work = True
        for request in claimed:
            self.spawn(self.d.deliver(request, permit), request.id, slots.pop())
        # After spawning: the claimed are sent even if Tenang stops during this await.
        await self.pacer.give_back(surplus)
        return len(claimed)

    def ours(self) -> set[str]:
        """The requests this lane is sending or about to send live: never dead."""
        return self.delivering | self.leased

    async def renew(self, now: float) -> None:
        """Extend to ``now + lease_s`` the leases of every request this lane is sending
        or about to send live, and of the send slots they hold (those first: a row
        renewed is then one whose slot is too)."""
        await self.slots.renew(now + self.lease_s)
        alive = self.ours()
        if alive:
            await self.d.store.renew_leases(self.d.owner, sorted(alive), now + self.lease_s)

    async def _renew_all(self) -> None:
        await self.renew(self.clock())

    async def _take_over_expired(self, now: float) -> None:
        # Our own sends are alive, however long they took (a slow commit), and so are
        # live requests whose commit outlasted the lease from their receipt: renewed
        # first, at this same ``now``, so the take-over below never sees them as dead
        # (``renewal`` may last have run most of its period ago). Recording one as
        # interrupted would throw its real result away and send it again.
        await self.renew(now)
        for request in await self.d.store.take_over_expired(
                self.up.name, now, self.d.owner, now + self.lease_s):
            if request.id in self.ours():
                continue  # started between the renewal and the take-over: still ours
            log.warning("lease of %s expired mid-delivery; recording it as interrupted",
                        request.id, extra={"request_id": request.id, "upstream": self.up.name})
            try:
                await self.d.record_interrupted(request)
            except Exception:
                # One request that cannot be settled (its reconciliation broke) must not
                # keep the others taken over with it from being recorded; its lease
                # expires again and it is retried at the next take-over.
                log.exception("cannot record %s as interrupted", request.id,
                              extra={"request_id": request.id, "upstream": self.up.name})

    async def _until_due(self, now: float) -> float:
        due = await self.d.store.next_due_at(self.up.name)
        wait = self.relay_cfg.poll_interval_s if due is None else due - now
        return min(max(wait, 0.001), self.relay_cfg.poll_interval_s)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wakeup.wait()
        self.wakeup.clear()

    async def release(self, slots: list[int], *, wake: bool = True) -> None:
        """Give ``slots`` back (once: the list is emptied); ``wake``: the lane, which may
        be waiting for one (not when it gives back its own, unused)."""
        if slots:
            back = slots[:]
            slots.clear()
            if wake:
                self.wakeup.set()
            await self.slots.give_back(back)

    def spawn(self, coro: Coroutine[Any, Any, None], request_id: str, slot: int) -> None:
        """Run the delivery ``coro`` as a task of this lane, holding ``slot`` until it
        ends, however it ends."""
        async def holding() -> None:
            try:
                await coro
            finally:
                await self.release([slot])

        task = asyncio.create_task(holding(), name=f"deliver-{request_id}")
        self.in_flight.add(task)
        self.delivering.add(request_id)
        task.add_done_callback(lambda t: self._done(t, request_id))

    def _done(self, task: asyncio.Task[None], request_id: str) -> None:
        self.in_flight.discard(task)
        self.delivering.discard(request_id)
        self.wakeup.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task crashed", exc_info=task.exception())


def instance_owner() -> str:
    """This process's name on leases (requests, the breaker's probe): unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):x}"


class Relay:
    """Owns one lane per upstream. ``run()`` until ``stop()``; ``drain()`` for tests."""

    def __init__(self, config: Config, store: RequestQueue, session: aiohttp.ClientSession,
                 breakers: Mapping[str, AsyncBreaker], *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, owner: str | None = None,
                 observer: Observer = NULL_OBSERVER,
                 coordination: Coordination | None = None,
                 send_slots: SendSlots | None = None) -> None:
        """``coordination`` and ``send_slots``: the store's, when other instances share it
        (pacing and send slots are then the store's, one bucket and one set of slots per
        upstream); by default each lane paces and counts itself."""
        self.config = config
        self.owner = owner or instance_owner()
        self.lanes = {
            up.name: Lane(Deliverer(up, store, session, breakers[up.name], self.owner, clock,
                                    rng or random.Random(), observer,
                                    lease_margin_s=config.relay.lease_margin_s,
                                    outcomes=DeliveryLog(up.name, config.relay.log_summary_s,
                                                         config.relay.log_each_delivery)),
                          config, clock, pacer_for(up, coordination, clock),
                          slots_for(up, send_slots, self.owner))
            for up in config.upstreams
        }
        self._tasks: list[asyncio.Task[None]] = []

    def live(self, upstream: str, budget_s: float = 0.0) -> LiveAttempt:
        """A send to ``upstream`` made while the SIMRS waits (deadline mode), if the
        breaker allows one when it is entered (``with``; proxy/delivery/live.py) and a
        send slot is free or comes back within ``budget_s``."""
        return LiveAttempt(self.lanes[upstream], budget_s)

    def wake(self, upstream: str) -> None:
        """New work for ``upstream`` was committed."""
        lane = self.lanes[upstream]
        if lane.waiting_for_work:
            lane.wakeup.set()

    def start(self) -> None:
        for name, lane in self.lanes.items():
            lane.renewal.start()
            self._tasks.append(asyncio.create_task(lane.run(), name=f"relay-lane-{name}"))

    async def stop(self) -> None:
        """Stop claiming, let in-flight sends finish within the grace period, then cut the
        rest short and record them as interrupted. Idempotent. Their leases and slots are
        renewed until the last has ended: the grace period may outlast a lease, and
        another instance must not take over a send still going on here."""
        for lane in self.lanes.values():
            lane.stopping = True
            lane.wakeup.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        pending = {t for lane in self.lanes.values() for t in lane.in_flight}
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.config.relay.shutdown_grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if late:
                log.warning("%d deliveries cut short at shutdown; their leases expire and "
                            "they are retried as interrupted", len(late))
        for lane in self.lanes.values():
            await lane.renewal.stop()
            if lane.d.outcomes is not None:
                lane.d.outcomes.flush()  # the last seconds' summary

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Deliver until nothing is due or in flight (tests and tools; not for serve)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            busy = False
            for lane in self.lanes.values():
                if await lane.step() or lane.in_flight:
                    busy = True
            if not busy:
                return
        raise TimeoutError(f"relay did not drain within {timeout_s} s")
