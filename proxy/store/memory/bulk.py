"""Bulk retry job verbs of MemoryStore (same contract as the SQLite ones)."""

from __future__ import annotations

import dataclasses

from proxy.store.bulk_base import BulkJobRecord
from proxy.store.memory.maintenance import _check_live


class MemoryBulkMixin:
    # Created on first use: MemoryStore's own __init__ does not know about this mixin.
    _bulk: dict[int, BulkJobRecord]

    def _bulk_jobs(self) -> dict[int, BulkJobRecord]:
        if not hasattr(self, "_bulk"):
            self._bulk = {}
        return self._bulk

    async def add_bulk_job(self, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        _check_live(self)
        jobs = self._bulk_jobs()
        job = BulkJobRecord(max(jobs, default=0) + 1, actor, filter, expected, started_at)
        jobs[job.id] = job
        return job

    async def save_bulk_job(self, job: BulkJobRecord) -> None:
        _check_live(self)
        jobs = self._bulk_jobs()
        if job.id in jobs:
            jobs[job.id] = dataclasses.replace(
                jobs[job.id], retried=job.retried, skipped=job.skipped, stage=job.stage,
                cursor=job.cursor, finished_at=job.finished_at, error=job.error)

    async def bulk_job(self, job_id: int) -> BulkJobRecord | None:
        _check_live(self)
        return self._bulk_jobs().get(job_id)

    async def unfinished_bulk_jobs(self) -> list[BulkJobRecord]:
        _check_live(self)
        return [j for _, j in sorted(self._bulk_jobs().items()) if j.finished_at is None]
