"""A lane's pacing: how many sends it may start now (``rate.per_second``).

Alone on its store (SQLite) a lane paces itself with its in-process token bucket, as it
always has. Instances sharing a store (PostgreSQL) take their sends from the upstream's
one bucket in the store (``Coordination.take_send_tokens``), so together they send at
``per_second``, not N times it. After a maintenance window either one ramps up
(``TokenBucket.ramp_up``): the shared bucket is taken at the ramp's rate of the moment,
which every instance computes alike from the window's end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from proxy.config import UpstreamConfig
from proxy.policies.ratelimit import TokenBucket
from proxy.store.errors import StoreError
from proxy.store.protocols import Coordination

log = logging.getLogger("tenang.relay")

# The shared bucket saves up a twentieth of a second of sends at most, so no second
# holds more than 1.05 x per_second (issue 13: at most 55/s at per_second = 50, with room
# for arrivals bunched by a slow machine). A second's worth saved up, as a lane alone
# keeps, let three instances send 96 in the first second of a backlog at 50/s; a tenth
# of a second's, 57 to 60 on a loaded machine. Instances asking every few milliseconds
# spend it long before it fills.
SHARED_BURST_S = 0.05


class Pacer(Protocol):
    async def take(self, wanted: int) -> int:
        """Up to ``wanted`` sends that may start now; how many."""

    async def give_back(self, count: int) -> None:
        """Sends taken but not started (nothing was due)."""

    def wait_s(self) -> float:
        """Seconds to wait after a take that granted nothing."""

    def ramp_up(self, over_s: float) -> None:
        """Rise from a fraction of the rate to all of it over ``over_s`` seconds."""

    def fraction(self) -> float:
        """Share of ``per_second`` in force now (1.0 outside a ramp)."""


class LocalPacer:
    """One instance's own token bucket."""

    def __init__(self, per_second: float) -> None:
        self.bucket = TokenBucket(per_second)

    async def take(self, wanted: int) -> int:
        return self.bucket.take(wanted)

    async def give_back(self, count: int) -> None:
        self.bucket.give_back(count)

    def wait_s(self) -> float:
        return self.bucket.wait_s()

    def ramp_up(self, over_s: float) -> None:
        self.bucket.ramp_up(over_s)

    def fraction(self) -> float:
        return self.bucket.fraction()


class SharedPacer:
    """The upstream's one bucket in the store, for all instances on it. The local bucket
    only keeps the ramp's time: its share of the rate is what the store is asked for."""

    def __init__(self, upstream: UpstreamConfig, store: Coordination,
                 clock: Callable[[], float]) -> None:
        self._name = upstream.name
        self._store = store
        self._clock = clock
        per_second = upstream.rate.per_second
        self._ramp = TokenBucket(per_second, burst=per_second * SHARED_BURST_S, clock=clock)
        self._rate = self._ramp.per_second

    def _burst(self) -> float:
        return max(1.0, self._ramp.burst * self._ramp.fraction())

    async def take(self, wanted: int) -> int:
        self._rate = self._ramp.per_second * max(self._ramp.fraction(), 1e-3)
        return await self._store.take_send_tokens(self._name, wanted, self._clock(),
                                                  self._rate, self._burst())

    async def give_back(self, count: int) -> None:
        if count <= 0:
            return
        try:
            await self._store.return_send_tokens(self._name, count, self._burst())
        except StoreError as exc:
            # Lost tokens only slow the next fraction of a second; the claim's own error,
            # if any, is what the lane reports.
            log.debug("send rate %s: tokens not returned: %s", self._name, exc)

    def wait_s(self) -> float:
        """About one token's time at the rate (others take from the bucket too)."""
        return 1.0 / self._rate

    def ramp_up(self, over_s: float) -> None:
        self._ramp.ramp_up(over_s)

    def fraction(self) -> float:
        return self._ramp.fraction()


def pacer_for(upstream: UpstreamConfig, store: Coordination | None,
              clock: Callable[[], float]) -> Pacer:
    """The store's one bucket when other instances share the store; else the lane's own."""
    if store is not None and store.shared:
        return SharedPacer(upstream, store, clock)
    return LocalPacer(upstream.rate.per_second)
