"""Per-upstream pacing: a token bucket, so a recovered upstream is not stampeded.

After a maintenance window the bucket can ``ramp_up``: its rate starts at a fraction of
``per_second`` and rises linearly to it, and nothing saved up during the quiet time is
spent at once, so a long backlog reaches BPJS gradually (peers.md §4.9).
"""

from __future__ import annotations

import time
from collections.abc import Callable

RAMP_START_FRACTION = 0.1


class TokenBucket:
    """``per_second`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, per_second: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = max(1.0, burst if burst is not None else per_second)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()
        self._ramp_from: float | None = None  # clock time the ramp began
        self._ramp_s = 0.0
        self._ramp_start = 1.0

    def ramp_up(self, over_s: float, start_fraction: float = RAMP_START_FRACTION) -> None:
        """From now, refill at ``start_fraction`` of the rate rising linearly to the full
        rate over ``over_s`` seconds; tokens saved up so far are dropped (at most one
        remains). ``over_s <= 0`` does nothing."""
        if over_s <= 0:
            return
        self._refill()
        self._ramp_from, self._ramp_s = self._at, over_s
        self._ramp_start = min(1.0, max(0.0, start_fraction))
        self._tokens = min(self._tokens, 1.0)

    def fraction(self) -> float:
        """Share of ``per_second`` in force right now (1.0 outside a ramp)."""
        return self._fraction_at(self._clock())

    def _fraction_at(self, t: float) -> float:
        if self._ramp_from is None:
            return 1.0
        done = (t - self._ramp_from) / self._ramp_s
        return 1.0 if done >= 1 else self._ramp_start + (1 - self._ramp_start) * max(0.0, done)

    def _earned(self, t: float) -> float:
        """Tokens earned from the ramp's start to ``t``: the integral of the rising rate."""
        assert self._ramp_from is not None
        elapsed = max(0.0, t - self._ramp_from)
        ramp = min(elapsed, self._ramp_s)
        f0 = self._ramp_start
        rising = f0 * ramp + (1 - f0) * ramp * ramp / (2 * self._ramp_s)
        return self.per_second * (rising + (elapsed - ramp))

    def _refill(self) -> None:
        now = self._clock()
        if self._ramp_from is None:
            gained = (now - self._at) * self.per_second
            cap = self.burst
        else:
            gained = self._earned(now) - self._earned(self._at)
            cap = max(1.0, self.burst * self._fraction_at(now))
            if now >= self._ramp_from + self._ramp_s:
                self._ramp_from = None
        self._tokens = min(cap, self._tokens + gained)
        self._at = now

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` whole tokens now; returns how many were granted."""
        self._refill()
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def give_back(self, count: int) -> None:
        self._tokens = min(self.burst, self._tokens + count)

    def wait_s(self) -> float:
        """Seconds until at least one token is available."""
        self._refill()
        rate = self.per_second * max(self.fraction(), 1e-3)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / rate
