"""SQLite ``Schedules``: maintenance windows (schema v3) and bulk retry jobs (schema v6)."""

from __future__ import annotations

import sqlite3
from typing import Any

from proxy.store.records import BulkJobRecord, MaintenanceWindow
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES, with_where
from proxy.store.sqlite.rows import row_to_job, row_to_window


class SqliteSchedules:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def add_maintenance_window(
        self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        row = await self._db.write(lambda c: c.execute(
            QUERIES["insert_maintenance_window"],
            (upstream, starts_at, ends_at, reason, created_by, created_at)).fetchone())
        return row_to_window(row)

    async def cancel_maintenance_window(
        self, window_id: int, cancelled_at: float
    ) -> MaintenanceWindow | None:
        def op(c: sqlite3.Connection) -> tuple[Any, ...] | None:
            c.execute(QUERIES["cancel_maintenance_window"], (cancelled_at, window_id))
            row: tuple[Any, ...] | None = c.execute(
                QUERIES["get_maintenance_window"], (window_id,)).fetchone()
            return row

        row = await self._db.write(op)
        return None if row is None else row_to_window(row)

    async def maintenance_windows(
        self, *, upstream: str | None = None, in_force_after: float | None = None
    ) -> list[MaintenanceWindow]:
        where, params = list[str](), list[Any]()
        if upstream is not None:
            where.append("upstream=?")
            params.append(upstream)
        if in_force_after is not None:
            where.append("(ends_at IS NULL OR ends_at>?) AND "
                         "(cancelled_at IS NULL OR cancelled_at>?)")
            params += [in_force_after, in_force_after]
        rows = await self._db.read(with_where(QUERIES["maintenance_windows"], where),
                                   tuple(params))
        return [row_to_window(r) for r in rows]

    async def add_bulk_job(self, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        row = await self._db.write(lambda c: c.execute(
            QUERIES["insert_bulk_job"], (actor, filter, expected, started_at)).fetchone())
        return row_to_job(row)

    async def save_bulk_job(self, job: BulkJobRecord) -> None:
        await self._db.write(lambda c: c.execute(QUERIES["save_bulk_job"], (
            job.retried, job.skipped, job.stage, job.cursor, job.finished_at, job.error,
            job.id)))

    async def bulk_job(self, job_id: int) -> BulkJobRecord | None:
        rows = await self._db.read(QUERIES["get_bulk_job"], (job_id,))
        return row_to_job(rows[0]) if rows else None

    async def unfinished_bulk_jobs(self) -> list[BulkJobRecord]:
        rows = await self._db.read(QUERIES["unfinished_bulk_jobs"])
        return [row_to_job(r) for r in rows]

    async def lease_bulk_job(self, job_id: int, owner: str, now: float,
                             until: float) -> bool:
        changed = await self._db.write(lambda c: c.execute(
            QUERIES["lease_bulk_job"], (owner, until, job_id, owner, now)).rowcount)
        return bool(changed)
