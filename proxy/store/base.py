"""The Store protocol: durable state of every accepted request, in domain verbs.

Backends persist what ``proxy.lifecycle`` decides; they never decide transitions. No driver
exception escapes a backend: everything is wrapped in ``StoreError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from proxy.lifecycle import Status, Transition, Verdict, initial_status

Headers = tuple[tuple[str, str], ...]


class StoreError(Exception):
    """The store could not do what was asked; ``reason`` is safe to show a client."""

    reason = "store unavailable"


class StoreUnavailable(StoreError):
    reason = "store unavailable (database locked or closed)"


class StoreFull(StoreError):
    reason = "store full (no space left on the disk holding the queue)"


class DuplicateKey(StoreError):
    """Another request already holds this dedup key (a concurrent resubmission)."""

    reason = "a request with this dedup key already exists"


class Conflict(StoreError):
    """The row was not in the state the caller expected (someone else moved it)."""

    reason = "request changed state concurrently"


@dataclass(frozen=True, slots=True)
class NewRequest:
    id: str
    upstream: str
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    received_at: float
    # Set by the endpoint's rule (proxy/bpjs/presets.py): its name, the key that orders
    # it behind earlier requests (e.g. "kodebooking=KB1"), and its business deadline.
    endpoint: str | None = None
    ordering_key: str | None = None
    expires_at: float | None = None
    dedup_key: str | None = None  # unique while set: resubmissions find the original
    coalesce_key: str | None = None  # pending ones with equal keys collapse to the newest
    # Deadline mode stores the request already leased to the relay that sends it live.
    lease_owner: str | None = None
    lease_expires_at: float | None = None

    def as_stored(self) -> StoredRequest:
        """The row ``enqueue`` writes for this request, without reading it back."""
        return StoredRequest(
            id=self.id, upstream=self.upstream, method=self.method, path=self.path,
            query=self.query, headers=self.headers, body=self.body,
            received_at=self.received_at,
            status=initial_status(self.lease_owner is not None),
            attempts=0, next_attempt_at=self.received_at, updated_at=self.received_at,
            reason=None, lease_owner=self.lease_owner, lease_expires_at=self.lease_expires_at,
            endpoint=self.endpoint, ordering_key=self.ordering_key,
            expires_at=self.expires_at, dedup_key=self.dedup_key,
            coalesce_key=self.coalesce_key)


@dataclass(frozen=True, slots=True)
class StoredRequest:
    id: str
    upstream: str
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    received_at: float
    status: Status
    attempts: int
    next_attempt_at: float | None
    updated_at: float
    reason: str | None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    retried_at: float | None = None
    endpoint: str | None = None
    ordering_key: str | None = None
    expires_at: float | None = None
    held_by: str | None = None  # the earlier request whose failure holds this one
    dedup_key: str | None = None
    coalesce_key: str | None = None
    reconcile_reads: int | None = None  # see calls.Transition
    own_faults: int = 0  # see calls.Transition

    @property
    def age_from(self) -> float:
        """Start of the age window: receive time, or the latest operator retry."""
        return self.received_at if self.retried_at is None else max(self.received_at,
                                                                    self.retried_at)

    @property
    def send_by(self) -> float | None:
        """The business deadline that still applies: ``expires_at``, unless a person
        retried the request after it (they decided it may be sent late)."""
        if self.expires_at is not None and self.retried_at is not None and \
                self.retried_at >= self.expires_at:
            return None
        return self.expires_at


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt, persisted together with the transition it caused."""

    number: int
    started_at: float
    duration_s: float
    verdict: Verdict
    http_status: int | None
    error: str | None
    response_body: bytes | None


@dataclass(frozen=True, slots=True)
class StoredAttempt(AttemptRecord):
    request_id: str


@dataclass(frozen=True, slots=True)
class NewCallback:
    """An outcome notification to POST to the SIMRS's callback URL, queued in the same
    transaction as the final state it reports, so neither exists without the other."""

    url: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class NewAudit:
    """Who asked for a transition: its audit-log entry (target: the request, at: the
    transition's ``now``), written in the transition's transaction."""

    actor: str
    action: str
    detail: str | None = None



@dataclass(frozen=True, slots=True)
class UpstreamSummary:
    counts: Mapping[Status, int] = field(default_factory=dict)
    # Receive time of the oldest request not yet delivered (pending or in flight): a
    # request being retried must not vanish from the age whenever it is mid-attempt.
    # "Oldest" is the first by id: ids are minted in receive order, so an index gives it.
    oldest_pending_at: float | None = None
    last_attempt_at: float | None = None
    last_verdict: Verdict | None = None


class Store(Protocol):
    """Durable queue of accepted requests. Every method is safe to call concurrently."""

    async def open(self) -> None:
        """Create or migrate the schema. Idempotent."""

    async def close(self) -> None:
        """Flush outstanding writes and release the database. Idempotent."""

    async def enqueue(self, request: NewRequest) -> None:
        """Return only once ``request`` is committed to durable storage: pending, or
        in_flight when it carries a lease.

        Raises StoreFull / StoreUnavailable when it could not be stored, DuplicateKey when
        its dedup key is taken.
        """

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        """Commit ``request`` like ``enqueue`` and return None, unless another request
        holds its dedup key and ``lifecycle.still_matches`` it (``settled_window_s``, ``now``):
        then store nothing and return that one. An original that no longer matches
        loses its key to ``request``. Look-up, decision and insert are one transaction,
        so concurrent resubmissions of one key store exactly one new request."""

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        """The pending and in-flight requests with ``coalesce_key``, oldest first."""

    async def supersede(self, older: Sequence[str], newest: str, now: float,
                        callbacks: Mapping[str, NewCallback] | None = None) -> list[str]:
        """Cancel the requests of ``older`` still pending (``lifecycle.superseded_by``
        ``newest``) and return their ids; each cancel queues its callback from
        ``callbacks`` (built by the caller beforehand) in the same transaction."""

    async def count_queued(self, upstream: str) -> int:
        """Requests of ``upstream`` waiting for delivery (pending, in flight, held)."""

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        """Lease up to ``limit`` due requests of ``upstream`` (oldest first) as in_flight.

        A request is never claimed while an earlier one with the same ordering key is
        pending, in flight, failed, dead or held. With ``probe`` (the half-open breaker's
        one send) a due request with no own-fault history (``own_faults`` 0) is taken
        before older ones that were refused for credentials last time.
        """

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        """Pending requests behind a failed/dead/held one with the same ordering key
        become held (reason ``lifecycle.HELD_BEHIND`` + which one); held ones with nothing
        stuck before them any more return to pending; one transaction. Returns the newly
        held, so they can be reported."""

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None, transition: Transition,
        now: float, callback: NewCallback | None = None,
    ) -> None:
        """Persist an attempt (None: finished without one), the transition and the
        callback to send (if any), if ``owner`` still holds the lease.

        Raises Conflict when the lease was lost (the result is then not recorded twice),
        and ``lifecycle.IllegalTransition`` (nothing written) when ``lifecycle.ALLOWED`` has no
        move from in_flight to ``transition.status``.
        """

    async def release(self, request_id: str, owner: str, now: float) -> None:
        """Return a leased, unsent request to pending without counting an attempt."""

    async def take_over_expired(
        self, upstream: str, now: float, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        """Lease to ``owner`` the in_flight requests whose lease ended before ``now``.

        Their earlier worker died mid-delivery; the caller records the ambiguous attempt.
        """

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        """Extend to ``until`` the leases ``owner`` still holds on ``request_ids`` (in
        flight); return the ids renewed. A delivery still working on a request (its send
        outlived the lease, or its result waits for the store) renews its lease so that
        no take-over records it as interrupted and sends it again."""

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float,
        callback: NewCallback | None = None, audit: NewAudit | None = None,
    ) -> None:
        """Move a request that is still in ``expected`` state (queueing ``callback`` and
        appending ``audit`` to the audit log in the same transaction: all or nothing);
        otherwise raise Conflict. A move ``lifecycle.ALLOWED`` lacks raises
        ``lifecycle.IllegalTransition`` before anything is written."""

    async def get(self, request_id: str) -> StoredRequest | None: ...

    async def attempts(self, request_id: str) -> list[StoredAttempt]: ...

    async def summary(self) -> dict[str, UpstreamSummary]:
        """Per-upstream counts by status, oldest pending receive time, last attempt."""

    async def next_due_at(self, upstream: str) -> float | None:
        """When the earliest pending request of ``upstream`` becomes due."""

    async def check_writable(self) -> None:
        """Raise StoreError unless a write can be committed right now."""
