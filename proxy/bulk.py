"""Bulk retry of a filtered set of failed / dead / held requests, paced.

An operator first gets a dry-run count, then starts a job. The job walks the matches
newest first and moves ``batch`` of them back to pending, wakes the relay, then waits
``interval_s`` before the next batch: a backlog of thousands reaches the relay (and
BPJS) gradually, on top of the relay's own rate limit. Each request is retried through
``Operations.retry``, so each gets its own audit entry naming the job. Jobs live in
memory: after a restart the requests not yet reached simply stay where they were.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from proxy.calls import OPERATOR_RETRYABLE, InvalidTransition, Status
from proxy.operations import NotFound, Operations
from proxy.store.admin_base import RequestFilter
from proxy.store.base import Conflict, StoreError

log = logging.getLogger("tenang.bulk")

# Newest-first order of the statuses a bulk retry visits when the filter names none.
RETRYABLE_ORDER = (Status.DEAD, Status.FAILED, Status.HELD)


class NotRetryable(ValueError):
    """The filter names a status an operator cannot retry (e.g. succeeded)."""


@dataclass
class BulkJob:
    id: int
    actor: str
    filter: RequestFilter
    expected: int
    started_at: float
    retried: int = 0
    skipped: int = 0  # moved by someone else meanwhile
    finished_at: float | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None


def describe(f: RequestFilter) -> str:
    """The filter in the audit log's words, e.g. ``status=dead upstream='vclaim'``."""
    parts = []
    for fl in dataclasses.fields(f):
        value = getattr(f, fl.name)
        if value is None:
            continue
        if isinstance(value, Status):
            text = value.value
        elif isinstance(value, float):
            text = datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
        else:
            text = repr(value)
        parts.append(f"{fl.name}={text}")
    return " ".join(parts) or "all"


def retryable_statuses(f: RequestFilter) -> tuple[Status, ...]:
    if f.status is None:
        return RETRYABLE_ORDER
    if f.status not in OPERATOR_RETRYABLE:
        raise NotRetryable(f"bulk retry applies to failed, dead and held requests, "
                           f"not {f.status.value}")
    return (f.status,)


class BulkRetries:
    def __init__(self, ops: Operations, batch: int, interval_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._ops = ops
        self._batch = batch
        self._interval_s = interval_s
        self._clock = clock
        self._jobs: dict[int, BulkJob] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    async def dry_run(self, f: RequestFilter) -> int:
        """How many requests a bulk retry with ``f`` would move now."""
        return sum([await self._ops.store.count_requests(dataclasses.replace(f, status=s))
                    for s in retryable_statuses(f)])

    async def start(self, f: RequestFilter, actor: str, expected: int) -> BulkJob:
        """Start a job in the background; ``expected`` is the dry-run count shown to the
        operator (recorded for the audit trail). Raises NotRetryable."""
        retryable_statuses(f)
        job = BulkJob(max(self._jobs, default=0) + 1, actor, f, expected, self._clock())
        self._jobs[job.id] = job
        await self._ops.store.audit(actor, "bulk_retry", None,
                                    f"job #{job.id}: {describe(f)}; dry run {expected}",
                                    job.started_at)
        self._tasks[job.id] = asyncio.create_task(self._run(job), name=f"bulk-retry-{job.id}")
        return job

    def get(self, job_id: int) -> BulkJob | None:
        return self._jobs.get(job_id)

    async def _run(self, job: BulkJob) -> None:
        try:
            for status in retryable_statuses(job.filter):
                await self._drain(job, dataclasses.replace(job.filter, status=status))
        except StoreError as exc:
            job.error = exc.reason
            log.error("bulk retry #%s stopped: %s", job.id, exc)
        finally:
            job.finished_at = self._clock()
            self._tasks.pop(job.id, None)
        await self._ops.store.audit(
            job.actor, "bulk_retry_done", None,
            f"job #{job.id}: retried {job.retried}, skipped {job.skipped}"
            + (f"; stopped: {job.error}" if job.error else ""), job.finished_at)

    async def _drain(self, job: BulkJob, f: RequestFilter) -> None:
        cursor: str | None = None
        while True:
            page = await self._ops.store.find_requests(f, limit=self._batch, cursor=cursor)
            for r in page.items:
                try:
                    await self._ops.retry(r.id, job.actor, f"bulk retry #{job.id}")
                    job.retried += 1
                except (InvalidTransition, Conflict, NotFound):
                    job.skipped += 1
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
            if page.items:
                await asyncio.sleep(self._interval_s)  # the pacing itself, not a sync wait

    async def close(self) -> None:
        """Stop running jobs (their remaining requests stay as they are). Idempotent."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
