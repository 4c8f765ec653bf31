"""Bulk retry job verbs of SqliteStore (table ``bulk_jobs``, schema v6)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from proxy.store.bulk_base import BulkJobRecord

T = TypeVar("T")

_COLUMNS = ("id, actor, filter, expected, started_at, retried, skipped, stage, cursor, "
            "finished_at, error")


class _Sqlite(Protocol):
    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T: ...


def _job(r: sqlite3.Row | tuple[Any, ...]) -> BulkJobRecord:
    return BulkJobRecord(*r)


class SqliteBulkMixin:
    async def add_bulk_job(self: _Sqlite, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        row = await self._write(lambda c: c.execute(
            "INSERT INTO bulk_jobs (actor, filter, expected, started_at) VALUES (?,?,?,?) "
            f"RETURNING {_COLUMNS}", (actor, filter, expected, started_at)).fetchone())
        return _job(row)

    async def save_bulk_job(self: _Sqlite, job: BulkJobRecord) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE bulk_jobs SET retried=?, skipped=?, stage=?, cursor=?, finished_at=?, "
            "error=? WHERE id=?", (job.retried, job.skipped, job.stage, job.cursor,
                                   job.finished_at, job.error, job.id)))

    async def bulk_job(self: _Sqlite, job_id: int) -> BulkJobRecord | None:
        rows = await self._read(f"SELECT {_COLUMNS} FROM bulk_jobs WHERE id=?", (job_id,))
        return _job(rows[0]) if rows else None

    async def unfinished_bulk_jobs(self: _Sqlite) -> list[BulkJobRecord]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM bulk_jobs WHERE finished_at IS NULL ORDER BY id")
        return [_job(r) for r in rows]
