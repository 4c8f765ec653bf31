"""In-memory ``Schedules``: maintenance windows and bulk retry jobs."""

from __future__ import annotations

import dataclasses

from proxy.store.memory.state import MemoryState
from proxy.store.records import BulkJobRecord, MaintenanceWindow


class MemorySchedules:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def add_maintenance_window(
        self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        self._s.live()
        windows = self._s.windows
        window = MaintenanceWindow(
            id=max(windows, default=0) + 1, upstream=upstream, starts_at=starts_at,
            ends_at=ends_at, reason=reason, created_by=created_by, created_at=created_at)
        windows[window.id] = window
        return window

    async def cancel_maintenance_window(
        self, window_id: int, cancelled_at: float
    ) -> MaintenanceWindow | None:
        self._s.live()
        windows = self._s.windows
        window = windows.get(window_id)
        if window is not None and window.cancelled_at is None:
            window = windows[window_id] = dataclasses.replace(window, cancelled_at=cancelled_at)
        return window

    async def maintenance_windows(
        self, *, upstream: str | None = None, in_force_after: float | None = None
    ) -> list[MaintenanceWindow]:
        self._s.live()
        t = in_force_after
        return sorted(
            (w for w in self._s.windows.values()
             if (upstream is None or w.upstream == upstream)
             and (t is None or ((w.ends_at is None or w.ends_at > t)
                                and (w.cancelled_at is None or w.cancelled_at > t)))),
            key=lambda w: (w.starts_at, w.id),
        )

    async def add_bulk_job(self, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        self._s.live()
        jobs = self._s.bulk_jobs
        job = BulkJobRecord(max(jobs, default=0) + 1, actor, filter, expected, started_at)
        jobs[job.id] = job
        return job

    async def save_bulk_job(self, job: BulkJobRecord) -> None:
        self._s.live()
        jobs = self._s.bulk_jobs
        if job.id in jobs:
            jobs[job.id] = dataclasses.replace(
                jobs[job.id], retried=job.retried, skipped=job.skipped, stage=job.stage,
                cursor=job.cursor, finished_at=job.finished_at, error=job.error)

    async def bulk_job(self, job_id: int) -> BulkJobRecord | None:
        self._s.live()
        return self._s.bulk_jobs.get(job_id)

    async def unfinished_bulk_jobs(self) -> list[BulkJobRecord]:
        self._s.live()
        return [j for _, j in sorted(self._s.bulk_jobs.items()) if j.finished_at is None]

    async def lease_bulk_job(self, job_id: int, owner: str, now: float,
                             until: float) -> bool:
        self._s.live()
        job = self._s.bulk_jobs.get(job_id)
        if job is None or job.finished_at is not None:
            return False
        holder, held_until = self._s.bulk_leases.get(job_id, (None, float("-inf")))
        if holder not in (None, owner) and held_until > now:
            return False
        self._s.bulk_leases[job_id] = (owner, until)
        return True
