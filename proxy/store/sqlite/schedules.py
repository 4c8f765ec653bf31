"""SQLite ``Schedules``: maintenance windows (schema v3) and bulk retry jobs (schema v6)."""

from __future__ import annotations

import sqlite3
from typing import Any

from proxy.store.records import BulkJobRecord, MaintenanceWindow
from proxy.store.sqlite.db import SqliteDb

_WINDOW_COLUMNS = "id, upstream, starts_at, ends_at, reason, created_by, created_at, cancelled_at"
_JOB_COLUMNS = ("id, actor, filter, expected, started_at, retried, skipped, stage, cursor, "
            "finished_at, error")


def _window(r: sqlite3.Row | tuple[Any, ...]) -> MaintenanceWindow:
    return MaintenanceWindow(id=r[0], upstream=r[1], starts_at=r[2], ends_at=r[3],
                             reason=r[4] or "", created_by=r[5], created_at=r[6],
                             cancelled_at=r[7])


def _job(r: sqlite3.Row | tuple[Any, ...]) -> BulkJobRecord:
    return BulkJobRecord(*r)


class SqliteSchedules:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def add_maintenance_window(
        self, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        row = await self._db.write(lambda c: c.execute(
            "INSERT INTO maintenance_windows (upstream, starts_at, ends_at, reason, "
            f"created_by, created_at) VALUES (?,?,?,?,?,?) RETURNING {_WINDOW_COLUMNS}",
            (upstream, starts_at, ends_at, reason, created_by, created_at)).fetchone())
        return _window(row)

    async def cancel_maintenance_window(
        self, window_id: int, cancelled_at: float
    ) -> MaintenanceWindow | None:
        def op(c: sqlite3.Connection) -> tuple[Any, ...] | None:
            c.execute("UPDATE maintenance_windows SET cancelled_at=? "
                      "WHERE id=? AND cancelled_at IS NULL", (cancelled_at, window_id))
            row: tuple[Any, ...] | None = c.execute(
                f"SELECT {_WINDOW_COLUMNS} FROM maintenance_windows WHERE id=?",
                (window_id,)).fetchone()
            return row

        row = await self._db.write(op)
        return None if row is None else _window(row)

    async def maintenance_windows(
        self, *, upstream: str | None = None, in_force_after: float | None = None
    ) -> list[MaintenanceWindow]:
        where, params = ["1=1"], list[Any]()
        if upstream is not None:
            where.append("upstream=?")
            params.append(upstream)
        if in_force_after is not None:
            where.append("(ends_at IS NULL OR ends_at>?) AND "
                         "(cancelled_at IS NULL OR cancelled_at>?)")
            params += [in_force_after, in_force_after]
        rows = await self._db.read(
            f"SELECT {_WINDOW_COLUMNS} FROM maintenance_windows WHERE {' AND '.join(where)} "
            "ORDER BY starts_at, id", tuple(params))
        return [_window(r) for r in rows]

    async def add_bulk_job(self, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        row = await self._db.write(lambda c: c.execute(
            "INSERT INTO bulk_jobs (actor, filter, expected, started_at) VALUES (?,?,?,?) "
            f"RETURNING {_JOB_COLUMNS}", (actor, filter, expected, started_at)).fetchone())
        return _job(row)

    async def save_bulk_job(self, job: BulkJobRecord) -> None:
        await self._db.write(lambda c: c.execute(
            "UPDATE bulk_jobs SET retried=?, skipped=?, stage=?, cursor=?, finished_at=?, "
            "error=? WHERE id=?", (job.retried, job.skipped, job.stage, job.cursor,
                                   job.finished_at, job.error, job.id)))

    async def bulk_job(self, job_id: int) -> BulkJobRecord | None:
        rows = await self._db.read(f"SELECT {_JOB_COLUMNS} FROM bulk_jobs WHERE id=?", (job_id,))
        return _job(rows[0]) if rows else None

    async def unfinished_bulk_jobs(self) -> list[BulkJobRecord]:
        rows = await self._db.read(
            f"SELECT {_JOB_COLUMNS} FROM bulk_jobs WHERE finished_at IS NULL ORDER BY id")
        return [_job(r) for r in rows]
