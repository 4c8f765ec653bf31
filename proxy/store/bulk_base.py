"""Store verbs for bulk retry jobs, and the job record.

A job's progress (which status it is walking, where in it, what it has moved) is saved
after every batch, so a restart resumes the job where it stopped instead of forgetting
it. ``proxy.ops.bulk`` decides what a job does; backends only keep the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from proxy.store.base import Store


@dataclass(frozen=True, slots=True)
class BulkJobRecord:
    id: int
    actor: str
    filter: str  # the request-log filter as JSON (see ``proxy.ops.bulk.filter_to_json``)
    expected: int  # the dry-run count the operator confirmed
    started_at: float
    retried: int = 0
    skipped: int = 0  # moved by someone else meanwhile
    stage: int = 0  # index of the status being walked (``proxy.ops.bulk.retryable_statuses``)
    cursor: str | None = None  # keyset position within that status; None: its start
    finished_at: float | None = None
    error: str | None = None


@runtime_checkable
class BulkJobStore(Protocol):
    async def add_bulk_job(self, actor: str, filter: str, expected: int,
                           started_at: float) -> BulkJobRecord:
        """Persist a new job (no progress yet) and return it with its id."""

    async def save_bulk_job(self, job: BulkJobRecord) -> None:
        """Store the progress fields of ``job`` (retried, skipped, stage, cursor,
        finished_at, error); the rest never changes."""

    async def bulk_job(self, job_id: int) -> BulkJobRecord | None:
        """The job with that id, or None."""

    async def unfinished_bulk_jobs(self) -> list[BulkJobRecord]:
        """Jobs without ``finished_at``, oldest first."""


def bulk_job_store(store: Store) -> BulkJobStore:
    """``store`` as a BulkJobStore; TypeError when the backend lacks the bulk job verbs."""
    if not isinstance(store, BulkJobStore):
        raise TypeError(f"{type(store).__name__} does not implement the bulk job verbs")
    return store
