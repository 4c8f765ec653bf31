"""The request state machine: statuses, outcomes and every allowed transition.

Pure: no I/O, no clock reads. The relay and the admin API ask this module what the
next state is; stores only persist what it decides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from proxy.errors import TenangError
from proxy.policies.retry import RetryPolicy, backoff_delay_s

if TYPE_CHECKING:
    from proxy.store.records import StoredRequest


class Status(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    HELD = "held"
    CANCELLED = "cancelled"


class Verdict(StrEnum):
    """What one delivery attempt proved."""

    SUCCESS = "success"
    DUPLICATE = "duplicate"  # upstream says it already holds this: as good as success
    PERMANENT = "permanent"  # well-formed rejection: retrying cannot help
    TRANSIENT = "transient"  # upstream unreachable or broken: try again later
    INTERRUPTED = "interrupted"  # sent or maybe sent, no answer recorded (lease expired)


# Every move any backend makes. Memory checks each one; SQL statements name the state
# they move from in their WHERE, and the verbs whose target a caller chooses
# (``Operator.transition``, ``RequestQueue.complete_attempt``) check it before writing.
# Staying in a state is not a move: a take-over hands an in_flight lease to another owner.
ALLOWED: dict[Status, frozenset[Status]] = {
    # PENDING -> HELD: an earlier request with the same ordering key is stuck
    # (``RequestQueue.refresh_holds``).
    Status.PENDING: frozenset({Status.IN_FLIGHT, Status.CANCELLED, Status.DEAD, Status.HELD}),
    # IN_FLIGHT -> CANCELLED: a claimed update superseded by a newer one (coalescing).
    Status.IN_FLIGHT: frozenset(
        {Status.SUCCEEDED, Status.FAILED, Status.DEAD, Status.PENDING, Status.HELD,
         Status.CANCELLED}
    ),
    Status.FAILED: frozenset({Status.PENDING, Status.CANCELLED}),
    Status.DEAD: frozenset({Status.PENDING, Status.CANCELLED}),
    # HELD -> PENDING: an operator retry, or released once nothing before it is stuck.
    Status.HELD: frozenset({Status.PENDING, Status.CANCELLED}),
    Status.SUCCEEDED: frozenset(),
    Status.CANCELLED: frozenset(),
}

OPERATOR_RETRYABLE = frozenset({Status.FAILED, Status.DEAD, Status.HELD})
CANCELLABLE = frozenset({Status.PENDING, Status.FAILED, Status.DEAD, Status.HELD})
FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.DEAD, Status.CANCELLED})
# Retention (``[retention]``) purges only requests in ``FINAL``: nothing pending, in
# flight or held is ever purged. A final request that still keeps a later one with its
# ordering key waiting (both in ``BLOCKS_LATER``) keeps its row, or deleting it would
# release what a person was meant to look at first.

# The status sets the store queries are built from: every backend reads them here.
# An earlier request with the same ordering key in one of these states keeps the later
# ones waiting (Antrean task ids must arrive in order) ...
BLOCKS_LATER = frozenset({Status.PENDING, Status.IN_FLIGHT, Status.FAILED, Status.DEAD,
                          Status.HELD})
# ... and in one of these it will not move on its own, so the later ones are held.
STUCK = frozenset({Status.FAILED, Status.DEAD, Status.HELD})
# What counts against an upstream's max_pending.
QUEUED = frozenset({Status.PENDING, Status.IN_FLIGHT, Status.HELD})
# "Not yet succeeded": may still end in success or needs a person. Cancelled requests
# will never be sent, so they are not open. (The same members as BLOCKS_LATER, another rule.)
OPEN = frozenset({Status.PENDING, Status.IN_FLIGHT, Status.FAILED, Status.DEAD, Status.HELD})
# Waiting to be sent or being sent: the oldest is an upstream's "oldest pending", the
# newest of a coalescing key supersedes the older ones.
LIVE = frozenset({Status.PENDING, Status.IN_FLIGHT})


def sql_in(statuses: frozenset[Status]) -> str:
    """``statuses`` as an SQL list literal, ``('pending','in_flight')``, in declaration
    order (a frozenset's own order changes from one process to the next). For SQL
    backends, rendered once at import."""
    return "(" + ",".join(f"'{s.value}'" for s in Status if s in statuses) + ")"


# A natural-key resubmission after one of these is a person trying again (with data
# fixed, say): it is a new request. An Idempotency-Key always means the same request.
_RETRIED_BY_PEOPLE = frozenset({Status.FAILED, Status.DEAD})
# Marks a dedup key that came from an Idempotency-Key header (``<upstream>:idem:...``).
EXPLICIT_KEY = "idem"


def still_matches(original: StoredRequest, window_s: float, now: float) -> bool:
    """Whether a resubmission should get ``original`` back instead of a new delivery.

    An original not yet final (pending, in flight, held) always does, however old: it
    will still be delivered, and a SIMRS resending every 10 minutes while BPJS is down
    for a day would otherwise queue a second copy. ``window_s`` only bounds how long a
    settled original keeps answering, counted from when it settled.
    """
    if original.status not in FINAL:
        return True
    if original.status is Status.CANCELLED or original.updated_at < now - window_s:
        return False
    explicit = (original.dedup_key or "").startswith(f"{original.upstream}:{EXPLICIT_KEY}:")
    return explicit or original.status not in _RETRIED_BY_PEOPLE


def initial_status(leased: bool) -> Status:
    """A new request's state: a request stored with a lease (deadline mode, sent live)
    is in_flight for its owner, any other is pending."""
    return Status.IN_FLIGHT if leased else Status.PENDING


class IllegalTransition(Exception):
    """A store was asked for a move ``ALLOWED`` does not contain: a bug in the caller,
    not an operator's mistake (that is ``InvalidTransition``). Nothing was written."""

    def __init__(self, current: Status, wanted: Status) -> None:
        super().__init__(f"illegal transition {current.value} -> {wanted.value} "
                         "(not in lifecycle.ALLOWED)")
        self.current = current
        self.wanted = wanted


def ensure_allowed(current: Status, wanted: Status) -> None:
    """Raise ``IllegalTransition`` unless ``ALLOWED`` lets ``current`` become ``wanted``."""
    if wanted not in ALLOWED[current]:
        raise IllegalTransition(current, wanted)


class InvalidTransition(TenangError):
    """An operator asked for a move the state machine forbids (e.g. cancel a success)."""

    status = 409

    def __init__(self, current: Status, wanted: Status) -> None:
        super().__init__(f"cannot move a {current.value} request to {wanted.value}")
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    reason: str
    trips_breaker: bool = False
    retry_after_s: float | None = None
    # Sent, but no answer: the upstream may have applied it. Matters on routes where a
    # second send creates a second record (SEP insert).
    ambiguous: bool = False
    # The upstream refused the credentials the attempt carried (HTTP/envelope 401/403).
    auth_refused: bool = False
    # ... and the refusal is this request's own (its user_key, or refused again while the
    # upstream accepts other requests): it must not trip the breaker, and it ends the
    # request failed after ``RetryPolicy.max_own_refusals`` in a row.
    own_fault: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """The state a request moves to, with the schedule and reason to persist."""

    status: Status
    reason: str
    next_attempt_at: float | None = None
    # Set by an operator retry: the age limit then counts from this moment, or a request
    # that died of old age would die again at once instead of being sent.
    retried_at: float | None = None
    # Persisted with the state. Not None: the last send got no answer and the next claim
    # reads BPJS to settle it instead of sending; the count of reads that failed so far
    # spaces the next one (backoff).
    reconcile_reads: int | None = None
    # Consecutive attempts of this request refused for credentials: counts towards
    # ending it failed when the refusal is its own, and keeps it from being the
    # half-open probe.
    own_faults: int = 0


def after_attempt(
    outcome: Outcome,
    *,
    attempts_made: int,
    age_from: float,
    policy: RetryPolicy,
    now: float,
    rng: random.Random,
    expires_at: float | None = None,
    deadline_holds: bool = False,
    own_faults_before: int = 0,
) -> Transition:
    """Decide where a request goes after attempt number ``attempts_made`` ended in ``outcome``.

    ``age_from`` is when the request's age window began: its receive time, or the latest
    operator retry. ``expires_at`` is its business deadline (end of the service day):
    a retry that would land after it is not scheduled; the request ends dead, or held
    with ``deadline_holds`` (a late send needs a person's decision).
    ``own_faults_before`` counts the credential refusals in a row before this attempt.
    """
    own_faults = own_faults_before + 1 if outcome.auth_refused else 0
    if outcome.own_fault and own_faults >= policy.max_own_refusals:
        return Transition(Status.FAILED, f"refused {own_faults} times in a row for a reason "
                          f"of its own: {outcome.reason}; fix the request, then retry",
                          own_faults=own_faults)
    transition = _schedule(outcome, attempts_made=attempts_made, age_from=age_from,
                           policy=policy, now=now, rng=rng, expires_at=expires_at,
                           deadline_holds=deadline_holds)
    return replace(transition, own_faults=own_faults) if own_faults else transition


def _schedule(outcome: Outcome, *, attempts_made: int, age_from: float, policy: RetryPolicy,
              now: float, rng: random.Random, expires_at: float | None,
              deadline_holds: bool) -> Transition:
    if outcome.verdict in (Verdict.SUCCESS, Verdict.DUPLICATE):
        return Transition(Status.SUCCEEDED, outcome.reason)
    if outcome.verdict is Verdict.PERMANENT:
        return Transition(Status.FAILED, outcome.reason)
    if attempts_made >= policy.max_attempts:
        return Transition(
            Status.DEAD, f"retry limit reached ({attempts_made} attempts): {outcome.reason}"
        )
    delay = backoff_delay_s(attempts_made, policy, rng)
    if outcome.retry_after_s is not None:
        delay = max(delay, min(outcome.retry_after_s, policy.max_retry_after_s))
    next_at = now + delay
    if expires_at is not None and next_at >= expires_at:
        return Transition(Status.HELD if deadline_holds else Status.DEAD,
                          f"{DEADLINE_PASSED} before the next try: {outcome.reason}")
    if next_at > age_from + policy.max_age_s:
        return Transition(
            Status.DEAD, f"max age reached ({policy.max_age_s:g} s): {outcome.reason}"
        )
    return Transition(Status.PENDING, outcome.reason, next_attempt_at=next_at)


def is_expired(age_from: float, policy: RetryPolicy, now: float) -> bool:
    """True when a request is too old to be sent at all."""
    return now > age_from + policy.max_age_s


DEADLINE_PASSED = "deadline passed (end of the service day, Asia/Jakarta)"
# Prefix of the reason a request gets when held behind an earlier one with the same
# ordering key, followed by that one's state and id (``held_behind``; SQL backends pass
# this prefix and append the same two in the statement).
HELD_BEHIND = "held: an earlier request with the same ordering key is "
RELEASED = "released: nothing before it with the same ordering key is stuck any more"
SUPERSEDED = "superseded by a newer update for the same thing: "


def held_behind(stuck_status: Status, stuck_id: str) -> Transition:
    """A pending request waits, held, behind the earlier ``stuck_id`` with its ordering
    key (``held_by`` names it; its schedule is kept for when it is released)."""
    return Transition(Status.HELD, f"{HELD_BEHIND}{stuck_status.value} ({stuck_id})")


def released(now: float) -> Transition:
    """A held request with nothing stuck before it any more: due now."""
    return Transition(Status.PENDING, RELEASED, next_attempt_at=now)


def superseded_by(newest: str) -> Transition:
    """An older pending update made pointless by ``newest`` (same coalescing key)."""
    return Transition(Status.CANCELLED, SUPERSEDED + newest)


def past_deadline(expires_at: float | None, now: float, *,
                  needs_person: bool = False) -> Transition | None:
    """A day-bound request whose day is over is not sent late: it ends dead, or held for
    a person where sending it late would create a backdated record (SEP insert)."""
    if expires_at is None or now < expires_at:
        return None
    if needs_person:
        return Transition(Status.HELD, f"{DEADLINE_PASSED}; a person must decide whether "
                          "to send it late (retry) or not (cancel)")
    return Transition(Status.DEAD, f"{DEADLINE_PASSED}; not sent late")


class Settlement(StrEnum):
    """What a reconciliation read found out about an ambiguous send."""

    FOUND = "found"  # upstream holds the record: it was applied
    ABSENT = "absent"  # upstream certainly does not hold it: safe to send again
    UNKNOWN = "unknown"  # it answered, and the answer cannot tell: a person decides
    # The read itself got no usable answer (timeout, reset, 5xx, HTML): reading is safe,
    # so it is read again later, never sent.
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Reading:
    """Where a reconciliation read stands: reads that failed before this one, whether
    it follows the send at once (else it is a claim of its own, its backoff already
    waited), and how long the upstream asked to wait (Retry-After)."""

    reads_before: int = 0
    just_sent: bool = True
    retry_after_s: float | None = None


def after_reconciliation(settlement: Settlement, found: str, outcome: Outcome, *,
                         attempts_made: int, age_from: float, policy: RetryPolicy,
                         now: float, rng: random.Random, expires_at: float | None = None,
                         reading: Reading = Reading()) -> Transition:
    """Where an ambiguous send on a non-idempotent route goes once reconciled: never
    blindly re-sent."""
    if settlement is Settlement.FOUND:
        return Transition(Status.SUCCEEDED, f"already applied upstream ({found})")
    if settlement is Settlement.UNKNOWN:
        return Transition(Status.HELD, f"outcome unknown ({outcome.reason}) and "
                          f"reconciliation could not tell ({found}); check BPJS, then retry "
                          "or cancel")
    if settlement is Settlement.UNREACHABLE:
        return read_again(found, outcome, reading, age_from=age_from, policy=policy,
                          now=now, rng=rng, expires_at=expires_at)
    settled = Outcome(outcome.verdict, f"{outcome.reason}; not applied upstream ({found})",
                      outcome.trips_breaker, outcome.retry_after_s)
    if not reading.just_sent:
        # Certainly not applied, and the wait is behind us: send it now.
        if attempts_made >= policy.max_attempts:
            return Transition(Status.DEAD, f"retry limit reached ({attempts_made} attempts):"
                              f" {settled.reason}")
        return Transition(Status.PENDING, settled.reason, next_attempt_at=now)
    return after_attempt(settled, attempts_made=attempts_made, age_from=age_from,
                         policy=policy, now=now, rng=rng, expires_at=expires_at,
                         deadline_holds=True)


def read_again(found: str, outcome: Outcome, reading: Reading, *, age_from: float,
               policy: RetryPolicy, now: float, rng: random.Random,
               expires_at: float | None) -> Transition:
    """A reconciliation read got no usable answer: read again after a backoff (the
    count of failed reads persists with the state), until the service day or the age
    limit ends it held, for a person: the send may have been applied."""
    reads = reading.reads_before + 1
    delay = backoff_delay_s(reads, policy, rng)
    if reading.retry_after_s is not None:
        delay = max(delay, min(reading.retry_after_s, policy.max_retry_after_s))
    next_at = now + delay
    why = f"{outcome.reason}; reconciliation read {reads} got no usable answer ({found})"
    # Held still in its reading phase: a person's retry reads before it sends.
    if expires_at is not None and next_at >= expires_at:
        return Transition(Status.HELD, f"{DEADLINE_PASSED} before BPJS's history could be "
                          f"read: {why}; {RETRY_READS_FIRST}", reconcile_reads=reads)
    if next_at > age_from + policy.max_age_s:
        return Transition(Status.HELD, f"max age reached ({policy.max_age_s:g} s) before "
                          f"BPJS's history could be read: {why}; {RETRY_READS_FIRST}",
                          reconcile_reads=reads)
    return Transition(Status.PENDING, f"{why}; reading again before any resend",
                      next_attempt_at=next_at, reconcile_reads=reads)


RETRY_READS_FIRST = ("a retry reads BPJS's history first and sends only if the SEP is not "
                     "there; cancel if it must not be sent late")


def too_late_to_read(expires_at: float | None, age_from: float, policy: RetryPolicy,
                     now: float, reads: int = 0) -> Transition | None:
    """A request waiting to be reconciled whose day (or age) ran out: held, not dead,
    since its unanswered send may have been applied; it stays in its reading phase."""
    if expires_at is not None and now >= expires_at:
        cause = DEADLINE_PASSED
    elif now > age_from + policy.max_age_s:
        cause = f"max age reached ({policy.max_age_s:g} s)"
    else:
        return None
    return Transition(Status.HELD, f"{cause} before BPJS's history could be read: a send "
                      f"got no answer and may have been applied; {RETRY_READS_FIRST}",
                      reconcile_reads=reads)


class BodyPurged(InvalidTransition):
    """An operator asked to retry a request whose body retention has dropped: there is
    nothing left to send (a 409, like any move its state does not allow)."""

    def __init__(self, current: Status) -> None:
        super().__init__(current, Status.PENDING)
        self.args = (f"cannot retry a {current.value} request whose body was purged by "
                     "retention: nothing is left to send",)


def operator_retry(current: Status, now: float, reconcile_reads: int | None = None, *,
                   body_purged: bool = False) -> Transition:
    """Due now, its age window restarted. A request held in its reading phase (its last
    send unanswered) keeps it: the retry reads before anything is sent again. One whose
    body retention dropped cannot be sent again (``BodyPurged``)."""
    if current not in OPERATOR_RETRYABLE:
        raise InvalidTransition(current, Status.PENDING)
    if body_purged:
        raise BodyPurged(current)
    if reconcile_reads is not None:
        return Transition(Status.PENDING, "retry requested by operator; reading BPJS's "
                          "history before any resend", next_attempt_at=now, retried_at=now,
                          reconcile_reads=reconcile_reads)
    return Transition(Status.PENDING, "retry requested by operator", next_attempt_at=now,
                      retried_at=now)


def operator_cancel(current: Status) -> Transition:
    if current not in CANCELLABLE:
        raise InvalidTransition(current, Status.CANCELLED)
    return Transition(Status.CANCELLED, "cancelled by operator")
