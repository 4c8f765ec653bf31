"""In-memory Store for unit tests: same contract as the durable backends, no durability."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from proxy import lifecycle
from proxy.lifecycle import Status, Transition
from proxy.store.base import (
    AttemptRecord,
    Conflict,
    DuplicateKey,
    NewAudit,
    NewCallback,
    NewRequest,
    StoredAttempt,
    StoredRequest,
    StoreError,
    StoreUnavailable,
    UpstreamSummary,
)
from proxy.store.memory.admin import MemoryAdminMixin
from proxy.store.memory.bulk import MemoryBulkMixin
from proxy.store.memory.callbacks import MemoryCallbacksMixin
from proxy.store.memory.maintenance import MemoryMaintenanceMixin
from proxy.store.summary import summarise


def _moved(row: StoredRequest, status: Status, **changes: Any) -> StoredRequest:
    """``row`` in ``status``: every state change of this backend goes through here, so a
    move ``lifecycle.ALLOWED`` lacks raises ``IllegalTransition`` before anything changes."""
    lifecycle.ensure_allowed(row.status, status)
    return dataclasses.replace(row, status=status, **changes)


class MemoryStore(MemoryBulkMixin, MemoryMaintenanceMixin, MemoryAdminMixin,
                  MemoryCallbacksMixin):
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
        if request.dedup_key is not None and any(
                r.dedup_key == request.dedup_key for r in self._rows.values()):
            raise DuplicateKey(f"dedup key {request.dedup_key} is taken")
        self._rows[request.id] = StoredRequest(
            **dataclasses.asdict(request),
            status=lifecycle.initial_status(request.lease_owner is not None),
            attempts=0, next_attempt_at=request.received_at, updated_at=request.received_at,
            reason=None,
        )

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        # No await before the insert: the decision is one step of the event loop.
        self._live()
        original = None if request.dedup_key is None else next(
            (r for r in self._rows.values() if r.dedup_key == request.dedup_key), None)
        if original is not None:
            if lifecycle.still_matches(original, settled_window_s, now):
                return original
            self._rows[original.id] = dataclasses.replace(original, dedup_key=None)
        await self.enqueue(request)
        return None

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        self._live()
        return sorted((r for r in self._rows.values() if r.coalesce_key == coalesce_key
                       and r.status in lifecycle.LIVE), key=lambda r: r.id)

    async def supersede(self, older: Sequence[str], newest: str, now: float,
                        callbacks: Mapping[str, NewCallback] | None = None) -> list[str]:
        self._live()
        transition = lifecycle.superseded_by(newest)
        cancelled = []
        for request_id in older:
            r = self._rows.get(request_id)
            if r is None or r.status is not Status.PENDING:
                continue
            self._rows[r.id] = _moved(
                r, transition.status, reason=transition.reason, updated_at=now,
                next_attempt_at=transition.next_attempt_at)
            callback = (callbacks or {}).get(r.id)
            if callback is not None:
                self._queue_callback(r.id, callback, now)
            cancelled.append(r.id)
        return cancelled

    async def count_queued(self, upstream: str) -> int:
        self._live()
        return sum(1 for r in self._rows.values() if r.upstream == upstream
                   and r.status in lifecycle.QUEUED)

    def _lease(self, rows: list[StoredRequest], owner: str, lease_until: float,
               now: float) -> list[StoredRequest]:
        # A take-over leases what is already in_flight: a new owner, not a new state.
        leased = [
            dataclasses.replace(r, lease_owner=owner, lease_expires_at=lease_until,
                                updated_at=now) if r.status is Status.IN_FLIGHT
            else _moved(r, Status.IN_FLIGHT, lease_owner=owner, lease_expires_at=lease_until,
                        updated_at=now)
            for r in rows
        ]
        self._rows.update((r.id, r) for r in leased)
        return leased

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        self._live()
        due = sorted(
            (r for r in self._rows.values()
             if r.upstream == upstream and r.status is Status.PENDING
             and r.next_attempt_at is not None and r.next_attempt_at <= now
             and self._first_earlier(r, lifecycle.BLOCKS_LATER) is None),
            key=lambda r: (r.next_attempt_at, r.id),
        )
        clean = [r for r in due if r.own_faults == 0] if probe else []
        return self._lease((clean or due)[:limit], owner, lease_until, now)

    def _first_earlier(self, row: StoredRequest, statuses: frozenset[Status]) -> (
            StoredRequest | None):
        if row.ordering_key is None:
            return None
        return min((p for p in self._rows.values()
                    if p.ordering_key == row.ordering_key and p.id < row.id
                    and p.status in statuses), key=lambda p: p.id, default=None)

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        self._live()
        held: list[StoredRequest] = []
        mine = sorted((r for r in self._rows.values() if r.upstream == upstream),
                      key=lambda r: r.id)
        release = lifecycle.released(now)
        for row in mine:
            current = self._rows[row.id]
            if current.status is Status.HELD and current.held_by is not None \
                    and self._first_earlier(current, lifecycle.STUCK) is None:
                self._rows[row.id] = _moved(
                    current, release.status, held_by=None,
                    next_attempt_at=release.next_attempt_at, updated_at=now,
                    reason=release.reason)
        for row in mine:
            current = self._rows[row.id]
            stuck = self._first_earlier(current, lifecycle.STUCK)
            if current.status is Status.PENDING and stuck is not None:
                hold = lifecycle.held_behind(stuck.status, stuck.id)
                self._rows[row.id] = _moved(current, hold.status, held_by=stuck.id,
                                            updated_at=now, reason=hold.reason)
                held.append(self._rows[row.id])
        return held

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

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        self._live()
        renewed = set()
        for request_id in request_ids:
            row = self._rows.get(request_id)
            if row is not None and row.status is Status.IN_FLIGHT and row.lease_owner == owner:
                self._rows[request_id] = dataclasses.replace(row, lease_expires_at=until)
                renewed.add(request_id)
        return renewed

    def _leased_by(self, request_id: str, owner: str) -> StoredRequest:
        row = self._rows.get(request_id)
        if row is None or row.status is not Status.IN_FLIGHT or row.lease_owner != owner:
            raise Conflict(f"{request_id}: lease not held by {owner}")
        return row

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None, transition: Transition,
        now: float, callback: NewCallback | None = None,
    ) -> None:
        self._live()
        lifecycle.ensure_allowed(Status.IN_FLIGHT, transition.status)
        row = self._leased_by(request_id, owner)
        done = _moved(
            row, transition.status, reason=transition.reason,
            next_attempt_at=transition.next_attempt_at,
            attempts=attempt.number if attempt else row.attempts,
            updated_at=now, lease_owner=None, lease_expires_at=None,
            reconcile_reads=transition.reconcile_reads, own_faults=transition.own_faults,
        )
        if callback is not None:
            self._queue_callback(request_id, callback, now)
        if attempt is not None:
            self._attempts.setdefault(request_id, []).append(
                StoredAttempt(request_id=request_id, **dataclasses.asdict(attempt))
            )
        self._rows[request_id] = done

    async def release(self, request_id: str, owner: str, now: float) -> None:
        self._live()
        row = self._leased_by(request_id, owner)
        self._rows[request_id] = _moved(
            row, Status.PENDING, updated_at=now, lease_owner=None, lease_expires_at=None,
        )

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float,
        callback: NewCallback | None = None, audit: NewAudit | None = None,
    ) -> None:
        self._live()
        lifecycle.ensure_allowed(expected, transition.status)
        row = self._rows.get(request_id)
        if row is None or row.status is not expected:
            raise Conflict(f"{request_id}: not {expected.value}")
        moved = _moved(
            row, transition.status, reason=transition.reason,
            next_attempt_at=transition.next_attempt_at, updated_at=now,
            retried_at=transition.retried_at or row.retried_at,
            reconcile_reads=transition.reconcile_reads, own_faults=transition.own_faults,
        )
        if callback is not None:
            self._queue_callback(request_id, callback, now)
        self._rows[request_id] = moved
        if audit is not None:  # no await before it suspends: one step with the move
            await self.audit(audit.actor, audit.action, request_id, audit.detail, now)

    async def get(self, request_id: str) -> StoredRequest | None:
        self._live()
        return self._rows.get(request_id)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        self._live()
        return list(self._attempts.get(request_id, []))

    async def summary(self) -> dict[str, UpstreamSummary]:
        self._live()
        last = [a for attempts in self._attempts.values() for a in attempts]
        return summarise(
            ((r.id, r.upstream, r.status, r.received_at) for r in self._rows.values()),
            ((self._rows[a.request_id].upstream, a.started_at, a.verdict) for a in last),
        )

    async def next_due_at(self, upstream: str) -> float | None:
        self._live()
        due = [r.next_attempt_at for r in self._rows.values()
               if r.upstream == upstream and r.status is Status.PENDING
               and r.next_attempt_at is not None
               and self._first_earlier(r, lifecycle.BLOCKS_LATER) is None]
        return min(due, default=None)

    async def check_writable(self) -> None:
        self._live()
