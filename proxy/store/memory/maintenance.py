"""Maintenance-window verbs of MemoryStore (same contract as the SQLite ones)."""

from __future__ import annotations

import dataclasses

from proxy.store.maintenance_base import MaintenanceWindow


class MemoryMaintenanceMixin:
    # Created on first use: MemoryStore's own __init__ does not know about this mixin.
    _maintenance: dict[int, MaintenanceWindow]

    def _windows(self) -> dict[int, MaintenanceWindow]:
        if not hasattr(self, "_maintenance"):
            self._maintenance = {}
        return self._maintenance

    async def add_maintenance_window(
        self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        _check_live(self)
        windows = self._windows()
        window = MaintenanceWindow(
            id=max(windows, default=0) + 1, upstream=upstream, starts_at=starts_at,
            ends_at=ends_at, reason=reason, created_by=created_by, created_at=created_at)
        windows[window.id] = window
        return window

    async def cancel_maintenance_window(
        self, window_id: int, cancelled_at: float
    ) -> MaintenanceWindow | None:
        _check_live(self)
        windows = self._windows()
        window = windows.get(window_id)
        if window is not None and window.cancelled_at is None:
            window = windows[window_id] = dataclasses.replace(window, cancelled_at=cancelled_at)
        return window

    async def maintenance_windows(
        self, *, upstream: str | None = None, in_force_after: float | None = None
    ) -> list[MaintenanceWindow]:
        _check_live(self)
        t = in_force_after
        return sorted(
            (w for w in self._windows().values()
             if (upstream is None or w.upstream == upstream)
             and (t is None or ((w.ends_at is None or w.ends_at > t)
                                and (w.cancelled_at is None or w.cancelled_at > t)))),
            key=lambda w: (w.starts_at, w.id),
        )


def _check_live(store: object) -> None:
    live = getattr(store, "_live", None)
    if callable(live):
        live()
