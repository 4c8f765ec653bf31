"""What the log says about finished deliveries, per upstream.

A line per delivery was ~9 % of the event loop while a backlog drained at thousands a
second, and a million "succeeded" lines after an outage bury the few that matter. So
routine outcomes (succeeded, a retry scheduled, superseded) are counted and summed up in
one INFO line per upstream at most every ``summary_s``::

    deliveries in the last 10 s: 1234 (1200 succeeded, 34 pending)

Failed, dead and held requests still get their own line with the request id and the
reason: each one is something ops may have to act on. ``relay.log_each_delivery = true``
brings back a line per delivery at INFO; otherwise those lines are DEBUG (``--log-level
DEBUG``). Every attempt is stored with its request id either way (the admin UI's
history), so the summary loses nothing a person investigating a request needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from proxy.lifecycle import Status

log = logging.getLogger("tenang.relay")

OWN_LINE = frozenset({Status.FAILED, Status.DEAD, Status.HELD})


class DeliveryLog:
    def __init__(self, upstream: str, summary_s: float = 10.0, each: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream = upstream
        self.summary_s = summary_s
        self.each = each
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.since = clock()
        self._timer: asyncio.TimerHandle | None = None

    def finished(self, request_id: str, status: Status, reason: str) -> None:
        """A delivery's outcome was stored."""
        extra = {"request_id": request_id, "upstream": self.upstream}
        if status in OWN_LINE:
            log.warning("request %s -> %s (%s)", request_id, status.value, reason, extra=extra)
        elif self.each:
            log.info("request %s -> %s (%s)", request_id, status.value, reason, extra=extra)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("request %s -> %s (%s)", request_id, status.value, reason, extra=extra)
        if not self.counts:
            self.since = self.clock()
            self._flush_later()
        self.counts[status.value] += 1
        if self.clock() - self.since >= self.summary_s:
            self.flush()

    def _flush_later(self) -> None:
        """The summary comes out even if the deliveries stop right after this one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a direct call): the next finished() or flush() reports
        self._timer = loop.call_later(self.summary_s, self.flush)

    def flush(self) -> str | None:
        """Log (and return) the summary of what was counted since the last one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.counts:
            return None
        parts = ", ".join(f"{n} {status}" for status, n in self.counts.most_common())
        line = (f"deliveries in the last {_seconds(self.clock() - self.since)}: "
                f"{self.counts.total()} ({parts})")
        log.info(line, extra={"upstream": self.upstream})
        self.counts.clear()
        return line


def _seconds(elapsed: float) -> str:
    """A window's length as ops read it: "0.4 s" for a burst, "10 s" for a full one."""
    elapsed = max(elapsed, 0.0)
    return f"{elapsed:.1f} s" if elapsed < 9.95 else f"{elapsed:.0f} s"
