"""Where an unanswered SEP insert goes after a reconciliation read (pure state machine):
a read that got no usable answer is read again with backoff, never sent, until its day
or age runs out; a later read that finds nothing sends it at once."""

from __future__ import annotations

import random

from proxy.lifecycle import (
    DEADLINE_PASSED,
    Outcome,
    Reading,
    Settlement,
    Status,
    Transition,
    Verdict,
    after_reconciliation,
    operator_retry,
    too_late_to_read,
)
from proxy.policies.retry import RetryPolicy

NOW = 1_700_000_000.0
POLICY = RetryPolicy(max_attempts=3, initial_delay_s=2.0, max_delay_s=60.0, max_age_s=3_600.0,
                     jitter="none", max_retry_after_s=120.0)
JUST_SENT = Reading()
NO_ANSWER = Outcome(Verdict.TRANSIENT, "timed out waiting for upstream", ambiguous=True)


def settle(settlement: Settlement, reading: Reading = JUST_SENT, *, attempts_made: int = 1,
           expires_at: float | None = None) -> Transition:
    return after_reconciliation(settlement, "history read: HTTP 503 from upstream", NO_ANSWER,
                                attempts_made=attempts_made, age_from=NOW, policy=POLICY,
                                now=NOW, rng=random.Random(0), expires_at=expires_at,
                                reading=reading)


def test_a_read_without_a_usable_answer_is_read_again_with_backoff() -> None:
    first = settle(Settlement.UNREACHABLE)
    assert (first.status, first.reconcile_reads, first.next_attempt_at) == (
        Status.PENDING, 1, NOW + 2.0)
    third = settle(Settlement.UNREACHABLE, Reading(reads_before=2, just_sent=False))
    assert (third.status, third.reconcile_reads, third.next_attempt_at) == (
        Status.PENDING, 3, NOW + 8.0)
    assert "reading again before any resend" in third.reason


def test_a_read_honours_retry_after_within_its_cap() -> None:
    t = settle(Settlement.UNREACHABLE, Reading(retry_after_s=30.0))
    assert t.next_attempt_at == NOW + 30.0
    capped = settle(Settlement.UNREACHABLE, Reading(retry_after_s=10_000.0))
    assert capped.next_attempt_at == NOW + 120.0


def test_reads_are_not_bounded_by_the_send_attempt_limit() -> None:
    t = settle(Settlement.UNREACHABLE, Reading(reads_before=50, just_sent=False),
               attempts_made=POLICY.max_attempts)
    assert t.status is Status.PENDING and t.reconcile_reads == 51


def test_a_read_that_would_land_after_the_service_day_holds_the_request() -> None:
    t = settle(Settlement.UNREACHABLE, expires_at=NOW + 1.0)
    # Held in its reading phase: a person's retry reads before anything is sent.
    assert t.status is Status.HELD and t.reconcile_reads == 1
    assert DEADLINE_PASSED in t.reason and "a retry reads BPJS's history first" in t.reason


def test_an_operator_retry_of_a_request_held_while_reading_reads_first() -> None:
    t = operator_retry(Status.HELD, NOW, reconcile_reads=4)
    assert (t.status, t.reconcile_reads, t.next_attempt_at) == (Status.PENDING, 4, NOW)
    assert operator_retry(Status.HELD, NOW).reconcile_reads is None


def test_a_later_read_that_finds_nothing_sends_at_once() -> None:
    t = settle(Settlement.ABSENT, Reading(reads_before=2, just_sent=False))
    assert (t.status, t.next_attempt_at, t.reconcile_reads) == (Status.PENDING, NOW, None)
    spent = settle(Settlement.ABSENT, Reading(just_sent=False),
                   attempts_made=POLICY.max_attempts)
    assert spent.status is Status.DEAD


def test_a_read_right_after_the_send_that_finds_nothing_waits_its_backoff() -> None:
    t = settle(Settlement.ABSENT)
    assert (t.status, t.next_attempt_at) == (Status.PENDING, NOW + 2.0)


def test_a_request_waiting_to_be_read_past_its_day_or_age_is_held() -> None:
    assert too_late_to_read(NOW + 1, NOW, POLICY, NOW) is None
    day = too_late_to_read(NOW, NOW - 10, POLICY, NOW)
    assert day is not None and day.status is Status.HELD and DEADLINE_PASSED in day.reason
    old = too_late_to_read(None, NOW - 3_601, POLICY, NOW)
    assert old is not None and old.status is Status.HELD and "max age" in old.reason
