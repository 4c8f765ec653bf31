"""The Schedules role on PostgreSQL: maintenance windows and bulk retry jobs, read from the
store by every instance; a bulk job is walked by the instance holding its lease."""

from __future__ import annotations

import asyncpg

from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q
from proxy.store.records import BulkJobRecord, MaintenanceWindow


def _window(r: asyncpg.Record) -> MaintenanceWindow:
    return MaintenanceWindow(id=r["id"], upstream=r["upstream"], starts_at=r["starts_at"],
                             ends_at=r["ends_at"], reason=r["reason"] or "",
                             created_by=r["created_by"], created_at=r["created_at"],
                             cancelled_at=r["cancelled_at"])


def _job(r: asyncpg.Record) -> BulkJobRecord:
    return BulkJobRecord(*r)


class PostgresSchedules:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_maintenance_window(
        self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        with translated():
            row = await self._db.pool.fetchrow(Q["add_maintenance_window"], upstream, starts_at,
                                               ends_at, reason, created_by, created_at)
        assert row is not None
        return _window(row)

    async def cancel_maintenance_window(self, window_id: int,
                                        cancelled_at: float) -> MaintenanceWindow | None:
        with translated():
            row = await self._db.pool.fetchrow(Q["cancel_maintenance_window"], window_id,
                                               cancelled_at)
        return None if row is None else _window(row)

    async def maintenance_windows(self, *, upstream: str | None = None,
                                  in_force_after: float | None = None
                                  ) -> list[MaintenanceWindow]:
        with translated():
            rows = await self._db.pool.fetch(Q["maintenance_windows"], upstream, in_force_after)
        return [_window(r) for r in rows]

    async def add_bulk_job(self, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        with translated():
            row = await self._db.pool.fetchrow(Q["add_bulk_job"], actor, filter, expected,
                                               started_at)
        assert row is not None
        return _job(row)

    async def save_bulk_job(self, job: BulkJobRecord) -> None:
        with translated():
            await self._db.pool.execute(Q["save_bulk_job"], job.id, job.retried, job.skipped,
                                        job.stage, job.cursor, job.finished_at, job.error)

    async def bulk_job(self, job_id: int) -> BulkJobRecord | None:
        with translated():
            row = await self._db.pool.fetchrow(Q["bulk_job"], job_id)
        return None if row is None else _job(row)

    async def unfinished_bulk_jobs(self) -> list[BulkJobRecord]:
        with translated():
            return [_job(r) for r in await self._db.pool.fetch(Q["unfinished_bulk_jobs"])]

    async def lease_bulk_job(self, job_id: int, owner: str, now: float,
                             until: float) -> bool:
        with translated():
            return await self._db.pool.fetchval(Q["lease_bulk_job"], job_id, owner, now,
                                                until) is not None
