"""In-memory ``RequestQueue``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from proxy import lifecycle
from proxy.lifecycle import Status, Transition
from proxy.store import chain
from proxy.store.errors import Conflict
from proxy.store.memory.state import MemoryState, moved
from proxy.store.records import AttemptRecord, NewCallback, StoredAttempt, StoredRequest


class MemoryQueue:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def _lease(self, rows: list[StoredRequest], owner: str, lease_until: float,
               now: float) -> list[StoredRequest]:
        # A take-over leases what is already in_flight: a new owner, not a new state.
        leased = [
            dataclasses.replace(r, lease_owner=owner, lease_expires_at=lease_until,
                                updated_at=now) if r.status is Status.IN_FLIGHT
            else moved(r, Status.IN_FLIGHT, lease_owner=owner, lease_expires_at=lease_until,
                       updated_at=now)
            for r in rows
        ]
        self._s.rows.update((r.id, r) for r in leased)
        self._s.link_states([(r.id, None) for r in rows if r.status is Status.PENDING],
                            Status.PENDING.value, Status.IN_FLIGHT.value, now)
        self._s.link_states([(r.id, chain.TAKEN_OVER) for r in rows
                             if r.status is Status.IN_FLIGHT],
                            Status.IN_FLIGHT.value, Status.IN_FLIGHT.value, now)
        return leased

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        s = self._s
        s.live()
        due = sorted(
            (r for r in s.rows.values()
             if r.upstream == upstream and r.status is Status.PENDING
             and r.next_attempt_at is not None and r.next_attempt_at <= now
             and s.first_earlier(r, lifecycle.BLOCKS_LATER) is None),
            key=lambda r: (r.next_attempt_at, r.id),
        )
        clean = [r for r in due if r.own_faults == 0] if probe else []
        return self._lease((clean or due)[:limit], owner, lease_until, now)

    async def take_over_expired(
        self, upstream: str, now: float, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        self._s.live()
        expired = sorted(
            (r for r in self._s.rows.values()
             if r.upstream == upstream and r.status is Status.IN_FLIGHT
             and r.lease_expires_at is not None and r.lease_expires_at < now),
            key=lambda r: r.id,
        )
        return self._lease(expired, owner, lease_until, now)

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        rows = self._s.rows
        self._s.live()
        renewed = set()
        for request_id in request_ids:
            row = rows.get(request_id)
            if row is not None and row.status is Status.IN_FLIGHT and row.lease_owner == owner:
                rows[request_id] = dataclasses.replace(row, lease_expires_at=until)
                renewed.add(request_id)
        return renewed

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        s = self._s
        s.live()
        held: list[StoredRequest] = []
        mine = sorted((r for r in s.rows.values() if r.upstream == upstream),
                      key=lambda r: r.id)
        release = lifecycle.released(now)
        released = []
        for row in mine:
            current = s.rows[row.id]
            if current.status is Status.HELD and current.held_by is not None \
                    and s.first_earlier(current, lifecycle.STUCK) is None:
                s.rows[row.id] = moved(
                    current, release.status, held_by=None,
                    next_attempt_at=release.next_attempt_at, updated_at=now,
                    reason=release.reason)
                released.append((row.id, release.reason))
        s.link_states(released, Status.HELD.value, release.status.value, now)
        for row in mine:
            current = s.rows[row.id]
            stuck = s.first_earlier(current, lifecycle.STUCK)
            if current.status is Status.PENDING and stuck is not None:
                hold = lifecycle.held_behind(stuck.status, stuck.id)
                s.rows[row.id] = moved(current, hold.status, held_by=stuck.id,
                                       updated_at=now, reason=hold.reason)
                held.append(s.rows[row.id])
        s.link_states([(r.id, r.reason) for r in held], Status.PENDING.value,
                      Status.HELD.value, now)
        return held

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        self._s.live()
        return sorted((r for r in self._s.rows.values() if r.coalesce_key == coalesce_key
                       and r.status in lifecycle.LIVE), key=lambda r: r.id)

    async def supersede(self, older: Sequence[str], newest: str, now: float,
                        callbacks: Mapping[str, NewCallback] | None = None) -> list[str]:
        s = self._s
        s.live()
        transition = lifecycle.superseded_by(newest)
        cancelled = []
        for request_id in older:
            r = s.rows.get(request_id)
            if r is None or r.status is not Status.PENDING:
                continue
            s.rows[r.id] = moved(
                r, transition.status, reason=transition.reason, updated_at=now,
                next_attempt_at=transition.next_attempt_at)
            callback = (callbacks or {}).get(r.id)
            if callback is not None:
                s.queue_callback(r.id, callback, now)
            cancelled.append(r.id)
        s.link_states([(rid, transition.reason) for rid in cancelled], Status.PENDING.value,
                      transition.status.value, now)
        return cancelled

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None,
        transition: Transition, now: float, callback: NewCallback | None = None,
    ) -> None:
        s = self._s
        s.live()
        lifecycle.ensure_allowed(Status.IN_FLIGHT, transition.status)
        row = s.rows.get(request_id)
        if row is None or row.status is not Status.IN_FLIGHT or row.lease_owner != owner:
            raise Conflict(f"{request_id}: lease not held by {owner}")
        done = moved(
            row, transition.status, reason=transition.reason,
            next_attempt_at=transition.next_attempt_at,
            attempts=attempt.number if attempt else row.attempts,
            updated_at=now, lease_owner=None, lease_expires_at=None,
            reconcile_reads=transition.reconcile_reads, own_faults=transition.own_faults,
        )
        if callback is not None:
            s.queue_callback(request_id, callback, now)
        if attempt is not None:
            s.attempts.setdefault(request_id, []).append(
                StoredAttempt(request_id=request_id, **dataclasses.asdict(attempt))
            )
        s.rows[request_id] = done
        if attempt is not None:
            s.link([chain.attempt_link(request_id, attempt)])
        s.link_states([(request_id, transition.reason)], Status.IN_FLIGHT.value,
                      transition.status.value, now)

    async def next_due_at(self, upstream: str) -> float | None:
        s = self._s
        s.live()
        due = [r.next_attempt_at for r in s.rows.values()
               if r.upstream == upstream and r.status is Status.PENDING
               and r.next_attempt_at is not None
               and s.first_earlier(r, lifecycle.BLOCKS_LATER) is None]
        return min(due, default=None)
