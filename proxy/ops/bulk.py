"""Bulk retry of a filtered set of failed / dead / held requests, paced.

An operator first gets a dry-run count, then starts a job. The job walks the matches
newest first and moves ``batch`` of them back to pending, wakes the relay, then waits
``interval_s`` before the next batch: a backlog of thousands reaches the relay (and
BPJS) gradually, on top of the relay's own rate limit. Each request is retried through
``Operations.retry``, so each gets its own audit entry naming the job.

Jobs live in the store with their progress, saved after every batch: a job cut short by
a restart or a crash is resumed at start-up from its last saved position. Requests it
had already moved are pending now and no longer match, so none is retried twice; only
the counts of a batch cut short by a crash may come out low.

Several instances share one store (PostgreSQL) and every one resumes jobs: a job is
walked by the instance holding its lease (``LEASE_S``), renewed before every batch.
A stop hands the lease back, so the next start (or another instance) resumes at once;
a crashed instance's job is taken over by whoever looks next after its lease ran out
(each instance looks every ``LEASE_S / 3``). A walker that finds its lease taken stops
without saving, so a stalled one never writes over its successor's progress.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from proxy.errors import TenangError
from proxy.lifecycle import OPERATOR_RETRYABLE, InvalidTransition, Status
from proxy.ops.operations import NotFound, Operations
from proxy.store.errors import Conflict, StoreError
from proxy.store.protocols import Schedules
from proxy.store.records import BulkJobRecord, RequestFilter

log = logging.getLogger("tenang.bulk")

# Newest-first order of the statuses a bulk retry visits when the filter names none.
RETRYABLE_ORDER = (Status.DEAD, Status.FAILED, Status.HELD)
# How long a job stays with its walker without a renewal: well above one batch (a
# hundred audited retries) plus the pacing interval (added on top).
LEASE_S = 30.0


class _LeaseLost(Exception):
    """Another instance holds the job now (this one stalled past its lease)."""


class NotRetryable(TenangError, ValueError):
    """The filter names a status an operator cannot retry (e.g. succeeded)."""


@dataclass
class BulkJob:
    """A job as the UI shows it; ``record`` is what the store keeps of it."""

    record: BulkJobRecord
    filter: RequestFilter

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def running(self) -> bool:
        """Not finished: being walked, or cut short by a restart and to be resumed."""
        return self.record.finished_at is None


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


def filter_to_json(f: RequestFilter) -> str:
    doc = {fl.name: getattr(f, fl.name) for fl in dataclasses.fields(f)
           if getattr(f, fl.name) is not None}
    if f.status is not None:
        doc["status"] = f.status.value
    return json.dumps(doc, sort_keys=True)


def filter_from_json(text: str) -> RequestFilter:
    doc = json.loads(text)
    if doc.get("status") is not None:
        doc["status"] = Status(doc["status"])
    return RequestFilter(**doc)


def retryable_statuses(f: RequestFilter) -> tuple[Status, ...]:
    if f.status is None:
        return RETRYABLE_ORDER
    if f.status not in OPERATOR_RETRYABLE:
        raise NotRetryable(f"bulk retry applies to failed, dead and held requests, "
                           f"not {f.status.value}")
    return (f.status,)


class BulkRetries:
    def __init__(self, ops: Operations, jobs: Schedules, batch: int, interval_s: float,
                 clock: Callable[[], float] = time.time, owner: str | None = None) -> None:
        self._ops = ops
        self._jobs = jobs
        self._batch = batch
        self._interval_s = interval_s
        self._clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):x}"
        self.lease_s = LEASE_S + interval_s
        # The jobs this process is walking now, with their tasks.
        self._walking: dict[int, tuple[BulkJob, asyncio.Task[None]]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def _lease(self, job_id: int) -> bool:
        now = self._clock()
        return await self._jobs.lease_bulk_job(job_id, self.owner, now, now + self.lease_s)

    async def dry_run(self, f: RequestFilter) -> int:
        """How many requests a bulk retry with ``f`` would move now."""
        return sum([await self._ops.log.count_requests(dataclasses.replace(f, status=s))
                    for s in retryable_statuses(f)])

    async def start(self, f: RequestFilter, actor: str, expected: int) -> BulkJob:
        """Start a job in the background; ``expected`` is the dry-run count shown to the
        operator (recorded for the audit trail). Raises NotRetryable."""
        retryable_statuses(f)
        record = await self._jobs.add_bulk_job(actor, filter_to_json(f), expected,
                                               self._clock())
        await self._lease(record.id)  # new: nobody else can hold it yet
        await self._ops.audit_log.audit(actor, "bulk_retry", None,
                                    f"job #{record.id}: {describe(f)}; dry run {expected}",
                                    record.started_at)
        return self._spawn(BulkJob(record, f))

    async def resume(self) -> list[BulkJob]:
        """Carry on with the jobs a restart (or crash) cut short and no other instance
        walks (their lease is free or ran out). Called at start-up, then every
        ``lease_s / 3`` by the watcher ``start_watching`` starts."""
        resumed = []
        for record in await self._jobs.unfinished_bulk_jobs():
            if record.id in self._walking or not await self._lease(record.id):
                continue
            job = BulkJob(record, filter_from_json(record.filter))
            log.warning("resuming bulk retry #%s of %s (retried %s so far)", record.id,
                        record.actor, record.retried)
            await self._ops.audit_log.audit(
                record.actor, "bulk_retry_resumed", None,
                f"job #{record.id}: resumed after a restart; retried {record.retried} "
                "before it", self._clock())
            resumed.append(self._spawn(job))
        return resumed

    async def get(self, job_id: int) -> BulkJob | None:
        if job_id in self._walking:
            return self._walking[job_id][0]
        record = await self._jobs.bulk_job(job_id)
        return None if record is None else BulkJob(record, filter_from_json(record.filter))

    def start_watching(self) -> None:
        """Look for jobs to take over every ``lease_s / 3`` (a crashed instance's).
        Idempotent."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="bulk-retry-watcher")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)  # the watch period, not a sync wait
            try:
                await self.resume()
            except StoreError as exc:
                log.warning("bulk retry: cannot look for jobs to resume: %s", exc)

    def _spawn(self, job: BulkJob) -> BulkJob:
        task = asyncio.create_task(self._run(job), name=f"bulk-retry-{job.id}")
        self._walking[job.id] = (job, task)
        return job

    async def _save(self, job: BulkJob, **changes: Any) -> None:
        job.record = dataclasses.replace(job.record, **changes)
        await self._jobs.save_bulk_job(job.record)

    async def _run(self, job: BulkJob) -> None:
        try:
            await self._walk(job)
        finally:
            # Only once its end is saved: until then the watcher must not resume it here.
            self._walking.pop(job.id, None)

    async def _walk(self, job: BulkJob) -> None:
        statuses = retryable_statuses(job.filter)
        try:
            while job.record.stage < len(statuses):
                await self._drain(job, dataclasses.replace(job.filter,
                                                           status=statuses[job.record.stage]))
                await self._save(job, stage=job.record.stage + 1, cursor=None)
        except _LeaseLost:
            log.warning("bulk retry #%s: another instance took it over; stopping here",
                        job.id)
            return
        except StoreError as exc:
            job.record = dataclasses.replace(job.record, error=exc.reason)
            log.error("bulk retry #%s stopped: %s", job.id, exc)
        # Not reached when cancelled (shutdown): the job stays unfinished, to be resumed.
        finished_at = self._clock()
        try:
            await self._save(job, finished_at=finished_at)
            done = job.record
            await self._ops.audit_log.audit(
                done.actor, "bulk_retry_done", None,
                f"job #{done.id}: retried {done.retried}, skipped {done.skipped}"
                + (f"; stopped: {done.error}" if done.error else ""), finished_at)
        except StoreError as exc:  # still unfinished in the store: resumed at next start
            log.error("bulk retry #%s: cannot record its end: %s", job.id, exc)

    async def _drain(self, job: BulkJob, f: RequestFilter) -> None:
        while True:
            if not await self._lease(job.id):  # renewed before every batch
                raise _LeaseLost
            page = await self._ops.log.find_requests(f, limit=self._batch,
                                                       cursor=job.record.cursor)
            retried = skipped = 0
            for r in page.items:
                if r.updated_at > job.record.started_at:
                    # Changed since the operator confirmed the job (e.g. this job retried
                    # it, and it failed again): not in the set they approved.
                    continue
                try:
                    await self._ops.retry(r.id, job.record.actor, f"bulk retry #{job.id}")
                    retried += 1
                except (InvalidTransition, Conflict, NotFound):
                    skipped += 1
            await self._save(job, retried=job.record.retried + retried,
                             skipped=job.record.skipped + skipped, cursor=page.next_cursor)
            if page.next_cursor is None:
                return
            if page.items:
                await asyncio.sleep(self._interval_s)  # the pacing itself, not a sync wait

    async def close(self) -> None:
        """Stop running jobs; they stay unfinished in the store, their leases handed
        back, to be resumed at the next start or by another instance. Idempotent."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
        walking = list(self._walking)
        tasks = [task for _, task in self._walking.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *([watcher] if watcher else []),
                             return_exceptions=True)
        now = self._clock()
        for job_id in walking:
            try:
                await self._jobs.lease_bulk_job(job_id, self.owner, now, now)
            except StoreError as exc:  # it is freed when the lease runs out
                log.warning("bulk retry #%s: lease not handed back: %s", job_id, exc)
