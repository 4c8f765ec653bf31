"""One breaker per upstream for all the instances sharing a store (issue 13).

Each instance keeps its ``AsyncBreaker`` (permits stay in-process and cost no store
round trip) and a ``SharedBreaker`` keeps it in step with the store's record
(``Coordination``):

- **Moves.** A move made here (fail_max consecutive failures seen by this instance, a
  probe's result, a maintenance window) is offered to the store at once, as a
  compare-and-set on the generation this instance last saw. Exactly one instance wins
  each move; a loser adopts the winner's state.
- **Failures are counted per instance**, not in the store: a store write per failed
  send would load the database most exactly when BPJS is down. While BPJS is down every
  instance sees failures, so the first to count ``fail_max`` opens the breaker for all;
  a failure at one instance in ``fail_max`` is not an outage.
- **The probe is a lease** (``lease_probe``): once the reset timeout has run out since
  the store's ``opened_at``, one instance leases the probe and sends it; the others
  send nothing until its result moves the breaker. A holder that dies loses the lease
  after ``lease_s`` (the upstream's timeout plus the lease margin), like a request's.
- **Cache: ``CACHE_S`` = 0.5 s.** Between reads an instance goes by its own copy, so a
  send asks nothing of the store. The cost: after one instance opens the breaker (or a
  probe closes it) the others learn within 0.5 s, and may send for that long into an
  outage (at most ``per_second`` x 0.5 sends, all paced by the shared rate, each
  failing fast and counted) or wait that long after a recovery. Half a second is small
  against a reset timeout (30 s by default) and a retry schedule, and the read is one
  primary-key row: 2 reads a second per upstream and instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from proxy.periodic import Periodic
from proxy.policies.breaker import AsyncBreaker, BreakerState
from proxy.store.errors import StoreError
from proxy.store.protocols import Coordination
from proxy.store.records import BreakerRecord

log = logging.getLogger("tenang.relay")

CACHE_S = 0.5


class SharedBreaker:
    """Keeps ``breaker`` in step with the store's record; ``start`` it once the store is
    open, ``stop`` it before the store closes."""

    def __init__(self, breaker: AsyncBreaker, store: Coordination, owner: str,
                 clock: Callable[[], float], lease_s: float, *,
                 cache_s: float = CACHE_S) -> None:
        self.breaker = breaker
        self._store = store
        self._owner = owner
        self._clock = clock
        self._lease_s = lease_s
        self._cache_s = cache_s
        self._seen = 0  # the store generation this instance's state follows
        self._moved = False  # a move made here the store has not settled yet
        self._loop = Periodic(f"breaker {breaker.name}", self.sync, self._wait_s, log,
                              expected=(StoreError,),
                              failed=f"breaker {breaker.name}: shared state not synced")
        breaker.share(self._moved_here)

    def _moved_here(self) -> None:
        self._moved = True
        self._loop.poke()

    async def start(self) -> None:
        """Take on the store's state before anything is sent (an instance started into
        an outage starts open), then follow it."""
        try:
            await self.sync()
        except StoreError as exc:
            log.warning("breaker %s: cannot read the shared state yet: %s",
                        self.breaker.name, exc)
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def _wait_s(self) -> float:
        """The cache time, or less when the probe falls due sooner."""
        probe_at = self.breaker.probe_at
        if probe_at is None:
            return self._cache_s
        return min(self._cache_s, max(0.001, probe_at - self._clock()))

    async def sync(self) -> None:
        """One round: offer a move made here, or read the store's state; then lease the
        probe if it is due and nobody holds it."""
        if self._moved:
            self._moved = False
            b = self.breaker
            won = await self._store.move_breaker(b.name, self._seen, b.state.value, b.opened_at)
            if won is not None:
                self._seen = won.generation
                return
        record = await self._store.breaker(self.breaker.name)
        if self._moved:
            return  # moved here meanwhile: offer that first, next round
        if record.generation != self._seen:
            self._adopt(record)
        await self._lease_if_due(record)

    def _adopt(self, record: BreakerRecord, *, probe_until: float | None = None) -> None:
        self._seen = record.generation
        self.breaker.adopt(BreakerState(record.state), record.opened_at,
                           probe_until=probe_until)

    async def _lease_if_due(self, record: BreakerRecord) -> None:
        b, now = self.breaker, self._clock()
        if b.forced or record.state == BreakerState.CLOSED.value or record.opened_at is None \
                or now < record.opened_at + b.reset_timeout_s \
                or (record.probe_until is not None and record.probe_until > now):
            return
        lease = await self._store.lease_probe(b.name, self._owner, now, b.reset_timeout_s,
                                              now + self._lease_s)
        if lease is not None and not self._moved:
            self._adopt(lease, probe_until=lease.probe_until)
