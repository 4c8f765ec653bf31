"""Store verbs for maintenance windows (announced BPJS downtime), and the window record.

Backends persist windows; ``proxy.ops.maintenance`` decides what an active window does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """An upstream held open from ``starts_at`` until ``ends_at`` (None: until cancelled)."""

    id: int
    upstream: str
    starts_at: float
    ends_at: float | None
    reason: str
    created_by: str
    created_at: float
    cancelled_at: float | None = None

    def active_at(self, now: float) -> bool:
        return (self.cancelled_at is None or self.cancelled_at > now) and \
            self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def over_at(self) -> float | None:
        """When it stops being in force: the earlier of its end and its cancellation."""
        ends = [t for t in (self.ends_at, self.cancelled_at) if t is not None]
        return min(ends) if ends else None


@runtime_checkable
class MaintenanceStore(Protocol):
    async def add_maintenance_window(
        self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        """Persist a new window and return it with its id."""

    async def cancel_maintenance_window(
        self, window_id: int, cancelled_at: float
    ) -> MaintenanceWindow | None:
        """Mark the window cancelled (an already cancelled one keeps its first time) and
        return it as stored; None when there is no window with that id."""

    async def maintenance_windows(
        self, *, upstream: str | None = None, in_force_after: float | None = None
    ) -> list[MaintenanceWindow]:
        """Windows ordered by start, then id. ``in_force_after``: only those neither
        ended nor cancelled at or before that time (None: all, history included)."""
