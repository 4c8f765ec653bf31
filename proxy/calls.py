"""The request state machine: statuses, outcomes and every allowed transition.

Pure: no I/O, no clock reads. The relay and the admin API ask this module what the
next state is; stores only persist what it decides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from proxy.policies.retry import RetryPolicy, backoff_delay_s


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


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.IN_FLIGHT, Status.CANCELLED, Status.DEAD}),
    Status.IN_FLIGHT: frozenset(
        {Status.SUCCEEDED, Status.FAILED, Status.DEAD, Status.PENDING, Status.HELD}
    ),
    Status.FAILED: frozenset({Status.PENDING, Status.CANCELLED}),
    Status.DEAD: frozenset({Status.PENDING, Status.CANCELLED}),
    Status.HELD: frozenset({Status.PENDING, Status.CANCELLED}),
    Status.SUCCEEDED: frozenset(),
    Status.CANCELLED: frozenset(),
}

OPERATOR_RETRYABLE = frozenset({Status.FAILED, Status.DEAD, Status.HELD})
CANCELLABLE = frozenset({Status.PENDING, Status.FAILED, Status.DEAD, Status.HELD})
FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.DEAD, Status.CANCELLED})


class InvalidTransition(Exception):
    """An operator asked for a move the state machine forbids (e.g. cancel a success)."""

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


@dataclass(frozen=True, slots=True)
class Transition:
    """The state a request moves to, with the schedule and reason to persist."""

    status: Status
    reason: str
    next_attempt_at: float | None = None
    # Set by an operator retry: the age limit then counts from this moment, or a request
    # that died of old age would die again at once instead of being sent.
    retried_at: float | None = None


def after_attempt(
    outcome: Outcome,
    *,
    attempts_made: int,
    age_from: float,
    policy: RetryPolicy,
    now: float,
    rng: random.Random,
) -> Transition:
    """Decide where a request goes after attempt number ``attempts_made`` ended in ``outcome``.

    ``age_from`` is when the request's age window began: its receive time, or the latest
    operator retry.
    """
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
    if next_at > age_from + policy.max_age_s:
        return Transition(
            Status.DEAD, f"max age reached ({policy.max_age_s:g} s): {outcome.reason}"
        )
    return Transition(Status.PENDING, outcome.reason, next_attempt_at=next_at)


def is_expired(age_from: float, policy: RetryPolicy, now: float) -> bool:
    """True when a request is too old to be sent at all."""
    return now > age_from + policy.max_age_s


def operator_retry(current: Status, now: float) -> Transition:
    if current not in OPERATOR_RETRYABLE:
        raise InvalidTransition(current, Status.PENDING)
    return Transition(Status.PENDING, "retry requested by operator", next_attempt_at=now,
                      retried_at=now)


def operator_cancel(current: Status) -> Transition:
    if current not in CANCELLABLE:
        raise InvalidTransition(current, Status.CANCELLED)
    return Transition(Status.CANCELLED, "cancelled by operator")
