"""Maintenance windows: announced BPJS downtime during which an upstream is held open.

While a window is in force the upstream's breaker is forced open, so requests queue
quietly (nothing is sent, nothing counts as a failure) and notifications for it are
suppressed. When it ends the breaker goes back to one half-open probe and the caller's
``on_change`` hook ramps the drain up (see ``TokenBucket.ramp_up``). Windows live in the
store; this service keeps the ones still relevant in memory so ``active`` is cheap
enough to ask on every check, and a background task applies starts and ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from proxy.bpjs.service_day import WIB
from proxy.config_ops import MaintenanceConfig
from proxy.errors import TenangError
from proxy.periodic import Periodic
from proxy.policies.breaker import AsyncBreaker
from proxy.store.errors import StoreError
from proxy.store.protocols import Schedules
from proxy.store.records import MaintenanceWindow

__all__ = ["InvalidWindow", "Maintenance", "MaintenanceError", "MaintenanceWindow",
           "UnknownWindow"]

# 9999-01-01 UTC: the latest time every zone can still show (NaN and inf fail the test).
MAX_TIME = 253_370_764_800
log = logging.getLogger("tenang.maintenance")

MAX_REASON = 500
# An open-ended window never ends on its own; the task still wakes this often to pick
# up windows another process (or a direct store edit) added.
MIN_WAIT_S = 0.01

ChangeHook = Callable[[str, bool], None]  # (upstream, now in maintenance)
# The audit log's append: (actor, action, target, detail, at).
AuditHook = Callable[[str, str, str | None, str | None, float], Awaitable[None]]


class MaintenanceError(TenangError):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    status = 400


class InvalidWindow(MaintenanceError):
    status = 400


class UnknownWindow(MaintenanceError):
    status = 404


class Maintenance:
    """Schedule, cancel and apply windows. ``start()`` the task, ``await stop()`` it."""

    def __init__(self, store: Schedules, breakers: Mapping[str, AsyncBreaker],
                 config: MaintenanceConfig | None = None, *,
                 clock: Callable[[], float] = time.time,
                 on_change: ChangeHook | None = None,
                 audit: AuditHook | None = None) -> None:
        self._store = store
        self._audit = audit
        self._breakers = breakers
        self._config = config or MaintenanceConfig()
        self._clock = clock
        self._on_change = on_change
        self._cache: list[MaintenanceWindow] = []
        self._loop = Periodic("maintenance", self._reload, self._wait_s, log,
                              expected=(StoreError,), failed="maintenance windows not refreshed",
                              level=logging.ERROR)

    # --- the interface the admin API and UI use ---------------------------------------

    async def schedule(self, upstream: str, starts_at: float, ends_at: float | None,
                       reason: str, actor: str) -> MaintenanceWindow:
        """Add a window (``ends_at`` None: until cancelled) and apply it if it has begun.

        Raises InvalidWindow for an unknown upstream, an empty reason or actor, or a
        window that ends before it starts or is already over.
        """
        now = self._clock()
        self._validate(upstream, starts_at, ends_at, reason, actor, now)
        window = await self._store.add_maintenance_window(
            upstream, starts_at, ends_at, reason.strip(), actor, now)
        log.warning("maintenance window %d for %s scheduled by %s: %s", window.id, upstream,
                    actor, window.reason, extra={"upstream": upstream})
        await self.tick()  # in force first: an audit write that fails must not delay it
        ends = "until cancelled" if ends_at is None else f"to {_wib(ends_at)}"
        await self._record(actor, "maintenance_schedule", window.id,
                           f"{upstream} from {_wib(starts_at)} {ends}: {window.reason}", now)
        return window

    async def cancel(self, window_id: int, actor: str) -> None:
        """End a window now (or drop a future one). Idempotent for a cancelled window;
        raises UnknownWindow when there is no window ``window_id``."""
        window = await self._store.cancel_maintenance_window(window_id, self._clock())
        if window is None:
            raise UnknownWindow(f"no maintenance window with id {window_id}")
        log.warning("maintenance window %d for %s cancelled by %s", window_id,
                    window.upstream, actor, extra={"upstream": window.upstream})
        await self.tick()
        await self._record(actor, "maintenance_cancel", window_id, window.upstream,
                           self._clock())

    async def _record(self, actor: str, action: str, window_id: int, detail: str,
                      at: float) -> None:
        """Who changed which window, for the audit log (the UI and the JSON API alike)."""
        if self._audit is not None:
            await self._audit(actor, action, f"maintenance:{window_id}", detail, at)

    async def windows(self, upstream: str | None = None,
                      include_past: bool = False) -> list[MaintenanceWindow]:
        """Windows by start time: current and future ones, or all with ``include_past``."""
        return await self._store.maintenance_windows(
            upstream=upstream, in_force_after=None if include_past else self._clock())

    def active(self, upstream: str, now: float) -> MaintenanceWindow | None:
        """The window holding ``upstream`` open at ``now`` (the latest-ending one)."""
        current = [w for w in self._cache if w.upstream == upstream and w.active_at(now)]
        return max(current, key=_over_or_never, default=None)

    def quiet(self, upstream: str, now: float) -> bool:
        """True during a window and its ramp afterwards: no notifications then, or an
        announced downtime would page people exactly as an unannounced one does."""
        ramp = self._config.ramp_s
        for w in self._cache:
            if w.upstream != upstream or w.starts_at > now:
                continue
            over = w.over_at()
            if over is None or now < over + ramp:
                return True
        return False

    # --- applying windows -----------------------------------------------------------

    async def tick(self) -> None:
        """Reload the relevant windows from the store and apply them to the breakers; the
        background task then reloads again and waits for the next start or end."""
        await self._reload()
        self._loop.poke()

    async def _reload(self) -> None:
        now = self._clock()
        self._cache = await self._store.maintenance_windows(
            in_force_after=now - self._config.ramp_s)
        self.apply(now)

    def apply(self, now: float) -> None:
        """Force open the breakers of upstreams in a window; release those whose window
        is over. Only this service forces breakers, so ``forced`` is its memory."""
        for name, breaker in self._breakers.items():
            window = self.active(name, now)
            if window is not None and not breaker.forced:
                log.warning("maintenance window %d for %s begins: circuit held open (%s)",
                            window.id, name, window.reason, extra={"upstream": name})
                breaker.force_open()
                self._changed(name, True)
            elif window is None and breaker.forced:
                log.warning("maintenance over for %s: probing, then a paced drain", name,
                            extra={"upstream": name})
                breaker.release()
                self._changed(name, False)

    def _changed(self, upstream: str, active: bool) -> None:
        if self._on_change is not None:
            self._on_change(upstream, active)

    def next_boundary(self, now: float) -> float | None:
        """The next start or end of a cached window after ``now``."""
        times = [t for w in self._cache for t in (w.starts_at, w.over_at())
                 if t is not None and t > now]
        return min(times, default=None)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop the background task. Idempotent. Forced breakers stay as they are: the
        process is going away, and the next start applies the windows again."""
        await self._loop.stop()

    def _wait_s(self) -> float:
        """Until the next check, or the next start or end of a window if sooner."""
        now = self._clock()
        wait = self._config.check_interval_s
        boundary = self.next_boundary(now)
        if boundary is not None:
            wait = min(wait, max(boundary - now, MIN_WAIT_S))
        return wait

    def _validate(self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
                  actor: str, now: float) -> None:
        if upstream not in self._breakers:
            known = ", ".join(sorted(self._breakers))
            raise InvalidWindow(f"unknown upstream {upstream!r} (configured: {known})")
        if not 0 <= starts_at <= MAX_TIME or (ends_at is not None
                                                and not 0 <= ends_at <= MAX_TIME):
            raise InvalidWindow(f"starts_at and ends_at must be times from 0 to {MAX_TIME} "
                                "(Unix seconds)")
        if ends_at is not None and ends_at <= starts_at:
            raise InvalidWindow("ends_at must be after starts_at")
        if ends_at is not None and ends_at <= now:
            raise InvalidWindow("the window is already over")
        if not reason.strip() or len(reason) > MAX_REASON:
            raise InvalidWindow(f"give a reason (1-{MAX_REASON} characters)")
        if not actor.strip():
            raise InvalidWindow("actor must not be empty")


def _wib(ts: float) -> str:
    return datetime.fromtimestamp(ts, WIB).strftime("%Y-%m-%d %H:%M WIB")


def _over_or_never(window: MaintenanceWindow) -> float:
    over = window.over_at()
    return math.inf if over is None else over
