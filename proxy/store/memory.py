"""In-memory Store for unit tests: same contract as the durable backends, no durability."""

from __future__ import annotations

import dataclasses

from proxy.calls import Status, Transition
from proxy.store.base import (
    AttemptRecord,
    Conflict,
    NewRequest,
    Page,
    StoredAttempt,
    StoredRequest,
    StoreError,
    StoreUnavailable,
    UpstreamSummary,
)
from proxy.store.summary import summarise


class MemoryStore:
    def __init__(self) -> None:
        self._rows: dict[str, StoredRequest] = {}
        self._attempts: dict[str, list[StoredAttempt]] = {}
        self._closed = False

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    def _live(self) -> None:
        if self._closed:
            raise StoreUnavailable("store is closed")

    async def enqueue(self, request: NewRequest) -> None:
        self._live()
        if request.id in self._rows:
            raise StoreError(f"request id {request.id} already exists")
        self._rows[request.id] = StoredRequest(
            **dataclasses.asdict(request), status=Status.PENDING, attempts=0,
            next_attempt_at=request.received_at, updated_at=request.received_at, reason=None,
        )

    def _lease(self, rows: list[StoredRequest], owner: str, lease_until: float,
               now: float) -> list[StoredRequest]:
        leased = [
            dataclasses.replace(r, status=Status.IN_FLIGHT, lease_owner=owner,
                                lease_expires_at=lease_until, updated_at=now)
            for r in rows
        ]
        self._rows.update((r.id, r) for r in leased)
        return leased

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        self._live()
        due = sorted(
            (r for r in self._rows.values()
             if r.upstream == upstream and r.status is Status.PENDING
             and r.next_attempt_at is not None and r.next_attempt_at <= now),
            key=lambda r: (r.next_attempt_at, r.id),
        )[:limit]
        return self._lease(due, owner, lease_until, now)

    async def take_over_expired(
        self, upstream: str, now: float, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        self._live()
        expired = sorted(
            (r for r in self._rows.values()
             if r.upstream == upstream and r.status is Status.IN_FLIGHT
             and r.lease_expires_at is not None and r.lease_expires_at < now),
            key=lambda r: r.id,
        )
        return self._lease(expired, owner, lease_until, now)

    def _leased_by(self, request_id: str, owner: str) -> StoredRequest:
        row = self._rows.get(request_id)
        if row is None or row.status is not Status.IN_FLIGHT or row.lease_owner != owner:
            raise Conflict(f"{request_id}: lease not held by {owner}")
        return row

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None, transition: Transition,
        now: float,
    ) -> None:
        self._live()
        row = self._leased_by(request_id, owner)
        if attempt is not None:
            self._attempts.setdefault(request_id, []).append(
                StoredAttempt(request_id=request_id, **dataclasses.asdict(attempt))
            )
        self._rows[request_id] = dataclasses.replace(
            row, status=transition.status, reason=transition.reason,
            next_attempt_at=transition.next_attempt_at,
            attempts=attempt.number if attempt else row.attempts,
            updated_at=now, lease_owner=None, lease_expires_at=None,
        )

    async def release(self, request_id: str, owner: str, now: float) -> None:
        self._live()
        row = self._leased_by(request_id, owner)
        self._rows[request_id] = dataclasses.replace(
            row, status=Status.PENDING, updated_at=now, lease_owner=None, lease_expires_at=None,
        )

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float
    ) -> None:
        self._live()
        row = self._rows.get(request_id)
        if row is None or row.status is not expected:
            raise Conflict(f"{request_id}: not {expected.value}")
        self._rows[request_id] = dataclasses.replace(
            row, status=transition.status, reason=transition.reason,
            next_attempt_at=transition.next_attempt_at, updated_at=now,
            retried_at=transition.retried_at or row.retried_at,
        )

    async def get(self, request_id: str) -> StoredRequest | None:
        self._live()
        return self._rows.get(request_id)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        self._live()
        return list(self._attempts.get(request_id, []))

    async def search(
        self, *, status: Status | None, upstream: str | None, limit: int, cursor: str | None
    ) -> Page:
        self._live()
        rows = sorted(
            (r for r in self._rows.values()
             if (status is None or r.status is status)
             and (upstream is None or r.upstream == upstream)
             and (cursor is None or r.id < cursor)),
            key=lambda r: r.id, reverse=True,
        )
        page = rows[:limit]
        more = len(rows) > limit
        return Page(page, page[-1].id if more and page else None)

    async def summary(self) -> dict[str, UpstreamSummary]:
        self._live()
        last = [a for attempts in self._attempts.values() for a in attempts]
        return summarise(
            ((r.upstream, r.status, r.received_at) for r in self._rows.values()),
            ((self._rows[a.request_id].upstream, a.started_at, a.verdict) for a in last),
        )

    async def next_due_at(self, upstream: str) -> float | None:
        self._live()
        due = [r.next_attempt_at for r in self._rows.values()
               if r.upstream == upstream and r.status is Status.PENDING
               and r.next_attempt_at is not None]
        return min(due, default=None)

    async def check_writable(self) -> None:
        self._live()
