"""The request state machine: where a request goes after an attempt or an operator action."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.lifecycle import (
    ALLOWED,
    DEADLINE_PASSED,
    InvalidTransition,
    Outcome,
    Status,
    Transition,
    Verdict,
    after_attempt,
    operator_cancel,
    operator_retry,
    past_deadline,
)
from proxy.policies.retry import RetryPolicy, backoff_delay_s

NOW = 1_700_000_000.0
POLICY = RetryPolicy(max_attempts=5, initial_delay_s=2.0, max_delay_s=60.0, max_age_s=3_600.0,
                     jitter="none", max_retry_after_s=120.0)
TRANSIENT = Outcome(Verdict.TRANSIENT, "HTTP 503 from upstream", trips_breaker=True)


def attempt(outcome: Outcome, attempts_made: int = 1, *, received_at: float = NOW,
            policy: RetryPolicy = POLICY, seed: int = 0) -> Transition:
    return after_attempt(outcome, attempts_made=attempts_made, age_from=received_at,
                         policy=policy, now=NOW, rng=random.Random(seed))


@pytest.mark.parametrize("verdict", [Verdict.SUCCESS, Verdict.DUPLICATE])
def test_success_and_duplicate_succeed(verdict: Verdict) -> None:
    t = attempt(Outcome(verdict, "code 200: OK"))
    assert t.status is Status.SUCCEEDED
    assert t.reason == "code 200: OK"
    assert t.next_attempt_at is None


def test_success_on_last_allowed_attempt_still_succeeds() -> None:
    t = attempt(Outcome(Verdict.SUCCESS, "ok"), attempts_made=POLICY.max_attempts)
    assert t.status is Status.SUCCEEDED


@pytest.mark.parametrize("attempts_made", [1, POLICY.max_attempts])
def test_permanent_fails_without_retry(attempts_made: int) -> None:
    t = attempt(Outcome(Verdict.PERMANENT, "rejected by upstream (code 201: Data tidak ada)"),
                attempts_made=attempts_made)
    assert t.status is Status.FAILED
    assert t.reason == "rejected by upstream (code 201: Data tidak ada)"
    assert t.next_attempt_at is None


@pytest.mark.parametrize(("attempts_made", "delay"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)])
def test_transient_goes_back_to_pending_after_backoff(attempts_made: int, delay: float) -> None:
    t = attempt(TRANSIENT, attempts_made=attempts_made)
    assert t.status is Status.PENDING
    assert t.reason == TRANSIENT.reason
    assert t.next_attempt_at == NOW + delay


def test_transient_with_jitter_uses_the_backoff_schedule() -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay_s=2.0, max_delay_s=60.0,
                         jitter="full")
    t = attempt(TRANSIENT, attempts_made=3, policy=policy, seed=42)
    assert t.status is Status.PENDING
    assert t.next_attempt_at == NOW + backoff_delay_s(3, policy, random.Random(42))


def test_retry_limit_makes_the_request_dead_with_reason() -> None:
    assert attempt(TRANSIENT, attempts_made=POLICY.max_attempts - 1).status is Status.PENDING
    t = attempt(TRANSIENT, attempts_made=POLICY.max_attempts)
    assert t.status is Status.DEAD
    assert "retry limit" in t.reason
    assert str(POLICY.max_attempts) in t.reason
    assert TRANSIENT.reason in t.reason
    assert t.next_attempt_at is None


def test_max_age_makes_the_request_dead() -> None:
    # Next attempt would be at NOW + 2 s, one second past the request's age limit.
    received = NOW - POLICY.max_age_s + 1.0
    t = attempt(TRANSIENT, received_at=received)
    assert t.status is Status.DEAD
    assert "max age" in t.reason
    assert TRANSIENT.reason in t.reason
    assert t.next_attempt_at is None


def test_next_attempt_exactly_at_max_age_is_still_scheduled() -> None:
    received = NOW - POLICY.max_age_s + 2.0
    t = attempt(TRANSIENT, received_at=received)
    assert t.status is Status.PENDING
    assert t.next_attempt_at == received + POLICY.max_age_s


def test_retry_after_raises_the_delay() -> None:
    t = attempt(Outcome(Verdict.TRANSIENT, "HTTP 429", retry_after_s=30.0))
    assert t.next_attempt_at == NOW + 30.0


def test_retry_after_never_shortens_the_backoff() -> None:
    t = attempt(Outcome(Verdict.TRANSIENT, "HTTP 429", retry_after_s=0.0), attempts_made=4)
    assert t.next_attempt_at == NOW + 16.0


def test_retry_after_is_capped_by_max_retry_after() -> None:
    t = attempt(Outcome(Verdict.TRANSIENT, "HTTP 429", retry_after_s=100_000.0))
    assert t.next_attempt_at == NOW + POLICY.max_retry_after_s


def test_retry_after_beyond_max_age_makes_the_request_dead() -> None:
    received = NOW - POLICY.max_age_s + 60.0
    t = attempt(Outcome(Verdict.TRANSIENT, "HTTP 429", retry_after_s=90.0), received_at=received)
    assert t.status is Status.DEAD
    assert "max age" in t.reason


def test_retry_after_does_not_bypass_the_retry_limit() -> None:
    t = attempt(Outcome(Verdict.TRANSIENT, "HTTP 429", retry_after_s=5.0),
                attempts_made=POLICY.max_attempts)
    assert t.status is Status.DEAD


@pytest.mark.parametrize("current", [Status.FAILED, Status.DEAD, Status.HELD])
def test_operator_retry_requeues_now(current: Status) -> None:
    t = operator_retry(current, NOW)
    assert t.status is Status.PENDING
    assert t.next_attempt_at == NOW
    assert "operator" in t.reason


@pytest.mark.parametrize("current",
                         [Status.PENDING, Status.IN_FLIGHT, Status.SUCCEEDED, Status.CANCELLED])
def test_operator_retry_is_refused_elsewhere(current: Status) -> None:
    with pytest.raises(InvalidTransition) as info:
        operator_retry(current, NOW)
    assert info.value.current is current
    assert info.value.wanted is Status.PENDING
    assert current.value in str(info.value)


@pytest.mark.parametrize("current", [Status.PENDING, Status.FAILED, Status.DEAD, Status.HELD])
def test_operator_cancel(current: Status) -> None:
    t = operator_cancel(current)
    assert t.status is Status.CANCELLED
    assert t.next_attempt_at is None
    assert "operator" in t.reason


@pytest.mark.parametrize("current", [Status.IN_FLIGHT, Status.SUCCEEDED, Status.CANCELLED])
def test_operator_cancel_is_refused_elsewhere(current: Status) -> None:
    with pytest.raises(InvalidTransition) as info:
        operator_cancel(current)
    assert info.value.current is current
    assert info.value.wanted is Status.CANCELLED


@given(
    verdict=st.sampled_from(list(Verdict)),
    attempts_made=st.integers(min_value=1, max_value=50),
    age_s=st.floats(min_value=0.0, max_value=200_000.0),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=1e6),
    max_attempts=st.integers(min_value=1, max_value=30),
    jitter=st.sampled_from(["none", "full"]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_after_attempt_only_makes_allowed_moves_from_in_flight(
        verdict: Verdict, attempts_made: int, age_s: float, retry_after: float | None,
        max_attempts: int, jitter: str, seed: int) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, initial_delay_s=1.0, max_delay_s=600.0,
                         max_age_s=86_400.0, jitter=jitter,  # type: ignore[arg-type]
                         max_retry_after_s=3_600.0)
    t = after_attempt(Outcome(verdict, "why", retry_after_s=retry_after),
                      attempts_made=attempts_made, age_from=NOW - age_s, policy=policy,
                      now=NOW, rng=random.Random(seed))
    assert t.status in ALLOWED[Status.IN_FLIGHT]
    assert t.reason
    if t.status is Status.PENDING:
        assert t.next_attempt_at is not None
        assert NOW < t.next_attempt_at <= NOW - age_s + policy.max_age_s
    else:
        assert t.next_attempt_at is None


@pytest.mark.parametrize("current", list(Status))
def test_operator_actions_only_make_allowed_moves(current: Status) -> None:
    actions: tuple[Callable[[], Transition], ...] = (
        lambda: operator_retry(current, NOW), lambda: operator_cancel(current))
    for action in actions:
        try:
            t = action()
        except InvalidTransition:
            continue
        assert t.status in ALLOWED[current]


def test_final_states_allow_no_operator_action() -> None:
    for current in (Status.SUCCEEDED, Status.CANCELLED):
        assert ALLOWED[current] == frozenset()
        with pytest.raises(InvalidTransition):
            operator_retry(current, NOW)
        with pytest.raises(InvalidTransition):
            operator_cancel(current)


# --- service-day deadline -----------------------------------------------------------------


def test_a_retry_that_would_land_after_the_deadline_ends_dead_now() -> None:
    policy = RetryPolicy(initial_delay_s=60, max_delay_s=60, jitter="none")
    out = after_attempt(Outcome(Verdict.TRANSIENT, "HTTP 503"), attempts_made=1,
                        age_from=0.0, policy=policy, now=1000.0, rng=random.Random(1),
                        expires_at=1030.0)
    assert out.status is Status.DEAD
    assert out.reason.startswith(DEADLINE_PASSED) and "HTTP 503" in out.reason
    ok = after_attempt(Outcome(Verdict.TRANSIENT, "HTTP 503"), attempts_made=1,
                       age_from=0.0, policy=policy, now=1000.0, rng=random.Random(1),
                       expires_at=1061.0)
    assert ok.status is Status.PENDING and ok.next_attempt_at == 1060.0


def test_past_deadline() -> None:
    assert past_deadline(None, 5.0) is None
    assert past_deadline(10.0, 9.9) is None
    late = past_deadline(10.0, 10.0)
    assert late is not None and late.status is Status.DEAD and "not sent late" in late.reason
