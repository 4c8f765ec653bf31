"""What the store keeps and returns: records only (no verbs, no rules).

Every backend reads and writes these; the role protocols (``proxy.store.protocols``)
name the verbs over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from proxy.lifecycle import Status, Verdict, initial_status

Headers = tuple[tuple[str, str], ...]

# Free-text and other filters no index serves read at most this many candidate rows per
# page (newest first), so one search costs the same at 1,000,000 rows as at 50,000; the
# page then says where to continue (see bench/RESULTS.md, "Admin request-log search").
SCAN_WINDOW = 50_000

SEP_ENDPOINT_PREFIX = "vclaim.sep"
SEP_PATH_PART = "/sep/"  # compared case-insensitively, as the gateway matches paths

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
    reconcile_reads: int | None = None  # see lifecycle.Transition
    own_faults: int = 0  # see lifecycle.Transition
    # When retention dropped its request and response bodies (metadata kept); None: never.
    purged_at: float | None = None

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


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    role: str
    created_at: float
    failed_logins: int = 0
    locked_until: float | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A login. ``id`` is what the store keys on (the auth layer stores a digest of the
    cookie value, so a copy of the database does not hand out live sessions)."""

    id: str
    user_name: str
    csrf_token: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """What the request log asks for; ``None`` means "any"."""

    status: Status | None = None
    upstream: str | None = None
    endpoint: str | None = None  # prefix of the endpoint name, e.g. "vclaim.sep"
    received_from: float | None = None  # inclusive, epoch seconds
    received_to: float | None = None  # exclusive
    text: str | None = None  # substring of path, query or body; ASCII case-insensitive

    @property
    def needs_scan(self) -> bool:
        """True when some condition is checked row by row rather than served by an index
        (status and the receive-time range are: ids are minted from the receive time)."""
        return bool(self.upstream or self.endpoint or self.text)


@dataclass(frozen=True, slots=True)
class RequestPage:
    """Newest first. ``next_cursor`` continues below the last row; ``capped`` says the
    page is short because the scan window ended, not because nothing older matches."""

    items: Sequence[StoredRequest]
    next_cursor: str | None
    capped: bool = False


@dataclass(frozen=True, slots=True)
class AttemptBucket:
    start: float
    counts: Mapping[Verdict, int] = field(default_factory=dict)


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


class CallbackStatus(StrEnum):
    PENDING = "pending"  # waiting for its next_attempt_at
    SENDING = "sending"  # claimed under a lease (a crashed sender's lease expires)
    DELIVERED = "delivered"  # the receiver answered 2xx
    DEAD = "dead"  # given up on after the last allowed attempt


# Callbacks the sender still has to send: their payload is needed, so retention keeps
# the request they report on as it is until they are delivered or dead.
UNSENT_CALLBACKS = frozenset({CallbackStatus.PENDING, CallbackStatus.SENDING})


class PurgeKind(StrEnum):
    """What retention removes of an old final request (``[retention]``)."""

    BODIES = "bodies"  # the request body, attempts' response bodies, callback payloads
    ROWS = "rows"  # the request with its attempts and callbacks


@dataclass(frozen=True, slots=True)
class PurgeBatch:
    """How one ``Retention.purge`` batch ended: how many requests it purged, and the id
    to continue after (None: the walk reached the cutoff, nothing older is left)."""

    purged: int
    after_id: str | None


@dataclass(frozen=True, slots=True)
class ResealBatch:
    """How one ``Sealing.reseal`` batch ended: the requests it read, the values (bodies,
    response bodies, callback payloads) it re-encrypted under the current key, and the
    id to continue after (None: it read the last request)."""

    requests: int
    resealed: int
    after_id: str | None


@dataclass(frozen=True, slots=True)
class StoredCallback:
    id: int
    request_id: str
    upstream: str
    url: str
    payload: bytes
    status: CallbackStatus
    attempts: int  # counted when claimed, so a send cut short by a crash still counts
    next_attempt_at: float
    lease_expires_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """An upstream held open from ``starts_at`` until ``ends_at`` (None: until cancelled)."""

    id: int
    upstream: str
    starts_at: float
    ends_at: float | None
    reason: str
    created_by: str
    created_at: float
    cancelled_at: float | None = None

    def active_at(self, now: float) -> bool:
        return (self.cancelled_at is None or self.cancelled_at > now) and \
            self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def over_at(self) -> float | None:
        """When it stops being in force: the earlier of its end and its cancellation."""
        ends = [t for t in (self.ends_at, self.cancelled_at) if t is not None]
        return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    """One upstream's circuit breaker as every instance sharing the store sees it.

    ``state`` is a ``policies.breaker.BreakerState`` value ("closed", "open",
    "half-open"); ``generation`` grows by one with every move, and a move names the
    generation it starts from, so of several instances moving at once exactly one wins.
    ``probe_owner`` holds the half-open probe's lease until ``probe_until``."""

    upstream: str
    state: str
    generation: int
    opened_at: float | None
    probe_owner: str | None
    probe_until: float | None

