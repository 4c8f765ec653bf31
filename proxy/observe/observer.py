"""The observer seam: what intake and the relay report, and who listens.

Intake calls ``accepted`` after a request is committed; a delivery calls ``attempt``
for every attempt (interrupted ones included) and ``finished`` after a transition is
stored; a passthrough read calls ``read`` once answered (by BPJS, the stale cache or
Tenang's fast failure); a reconciliation read calls ``reconciled`` with what it found;
intake calls ``refused`` when a caller's BPJS credentials fail (proxy/intake/credentials.py).
``Telemetry`` fans each call out to the metrics and the notifier; the default
``NULL_OBSERVER`` does nothing, so a Gateway or Relay built without one (tests, tools)
needs no wiring. Observers are called on the event loop and must return at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from proxy.lifecycle import Status, Verdict

if TYPE_CHECKING:  # only types: intake and the relay import this module, keep it light
    from proxy.observe.metrics import Metrics
    from proxy.observe.notify import Notifier

log = logging.getLogger("tenang.observe")

Finished = Callable[[str, str, Status, str], None]


class Observer(Protocol):
    def accepted(self, upstream: str, endpoint: str | None, seconds: float) -> None: ...

    def attempt(self, upstream: str, verdict: Verdict, seconds: float) -> None: ...

    def read(self, upstream: str, endpoint: str, answer: str, seconds: float) -> None: ...

    def reconciled(self, upstream: str, settlement: str) -> None: ...

    def refused(self, upstream: str, reason: str) -> None: ...

    def finished(self, upstream: str, request_id: str, status: Status, reason: str
                 ) -> None: ...


class NullObserver:
    def accepted(self, upstream: str, endpoint: str | None, seconds: float) -> None:
        return None

    def attempt(self, upstream: str, verdict: Verdict, seconds: float) -> None:
        return None

    def read(self, upstream: str, endpoint: str, answer: str, seconds: float) -> None:
        return None

    def reconciled(self, upstream: str, settlement: str) -> None:
        return None

    def refused(self, upstream: str, reason: str) -> None:
        return None

    def finished(self, upstream: str, request_id: str, status: Status, reason: str) -> None:
        return None


NULL_OBSERVER = NullObserver()


class Telemetry:
    """Metrics and notifications behind one Observer. A failing listener is logged and
    never propagates into intake or the relay."""

    def __init__(self, metrics: Metrics | None = None, notifier: Notifier | None = None,
                 on_finished: Finished | None = None) -> None:
        self.metrics = metrics
        self.notifier = notifier
        self.on_finished = on_finished  # backpressure's count, the callback sender

    def _to_metrics(self, what: str, upstream: str, call: Callable[[Metrics], None]) -> None:
        if self.metrics is not None:
            try:
                call(self.metrics)
            except Exception:
                log.exception("metrics: %s() failed", what, extra={"upstream": upstream})

    def accepted(self, upstream: str, endpoint: str | None, seconds: float) -> None:
        self._to_metrics("accepted", upstream,
                         lambda m: m.accepted(upstream, endpoint, seconds))

    def attempt(self, upstream: str, verdict: Verdict, seconds: float) -> None:
        self._to_metrics("attempt", upstream, lambda m: m.attempt(upstream, verdict, seconds))

    def read(self, upstream: str, endpoint: str, answer: str, seconds: float) -> None:
        self._to_metrics("read", upstream,
                         lambda m: m.read(upstream, endpoint, answer, seconds))

    def reconciled(self, upstream: str, settlement: str) -> None:
        self._to_metrics("reconciled", upstream, lambda m: m.reconciled(upstream, settlement))

    def refused(self, upstream: str, reason: str) -> None:
        self._to_metrics("refused", upstream, lambda m: m.refused(upstream, reason))

    def finished(self, upstream: str, request_id: str, status: Status, reason: str) -> None:
        if self.on_finished is not None:
            try:
                self.on_finished(upstream, request_id, status, reason)
            except Exception:
                log.exception("on_finished() failed",
                              extra={"upstream": upstream, "request_id": request_id})
        if self.notifier is not None:
            try:
                self.notifier.request_finished(upstream, request_id, status, reason)
            except Exception:
                log.exception("notify: request_finished() failed",
                              extra={"upstream": upstream, "request_id": request_id})
