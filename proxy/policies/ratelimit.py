"""Per-upstream pacing: a token bucket, so a recovered upstream is not stampeded."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``per_second`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, per_second: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = max(1.0, burst if burst is not None else per_second)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
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
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.per_second
