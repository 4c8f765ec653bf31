"""Whose fault a credential refusal is, and where a request refused for its own reason
goes (pure: classification and the state machine)."""

from __future__ import annotations

import json
import random

from multidict import CIMultiDict

from proxy.lifecycle import Outcome, Status, Verdict, after_attempt
from proxy.policies.classify import attribute, classify_response
from proxy.policies.retry import RetryPolicy

NOW = 1_700_000_000.0
POLICY = RetryPolicy(max_attempts=10, initial_delay_s=2.0, jitter="none", max_own_refusals=3)


def refusal(message: str) -> tuple[Outcome, str]:
    body = json.dumps({"metadata": {"code": 401, "message": message}}).encode()
    return classify_response(401, CIMultiDict(), body, envelope_required=True, now=NOW), message


def judge(refused: tuple[Outcome, str], *, own_user_key: bool = True, refused_before: bool = False,
          accepted_since: bool = False) -> Outcome:
    return attribute(*refused, own_user_key=own_user_key, refused_before=refused_before,
                     accepted_since=accepted_since)


def test_a_refused_user_key_that_came_with_the_request_is_its_own() -> None:
    judged = judge(refusal("Unauthorized! user_key tidak ditemukan"))
    assert judged.own_fault and not judged.trips_breaker and judged.auth_refused


def test_a_refused_user_key_from_the_config_is_every_requests() -> None:
    judged = judge(refusal("Unauthorized! user_key tidak ditemukan"), own_user_key=False)
    assert not judged.own_fault and judged.trips_breaker


def test_a_refused_signature_is_upstream_wide_until_others_get_through() -> None:
    bad = refusal("Unauthorized! Signature tidak valid")
    first = judge(bad)
    assert first.trips_breaker and not first.own_fault  # wrong secret: all would fail
    nobody_else = judge(bad, refused_before=True, accepted_since=False)
    assert nobody_else.trips_breaker and not nobody_else.own_fault
    again = judge(bad, refused_before=True, accepted_since=True)
    assert again.own_fault and not again.trips_breaker


def test_other_outcomes_are_left_alone() -> None:
    busy = Outcome(Verdict.TRANSIENT, "HTTP 503 from upstream", trips_breaker=True)
    assert judge((busy, ""), refused_before=True, accepted_since=True) is busy


def attempt(outcome: Outcome, before: int, made: int = 1) -> tuple[Status, int]:
    t = after_attempt(outcome, attempts_made=made, age_from=NOW, policy=POLICY, now=NOW,
                      rng=random.Random(0), own_faults_before=before)
    return t.status, t.own_faults


def test_own_refusals_end_the_request_failed_after_max_own_refusals_in_a_row() -> None:
    own = judge(refusal("Unauthorized! user_key tidak ditemukan"))
    assert attempt(own, 0) == (Status.PENDING, 1)
    assert attempt(own, 1, made=2) == (Status.PENDING, 2)
    assert attempt(own, 2, made=3) == (Status.FAILED, 3)


def test_upstream_wide_refusals_are_counted_but_never_fail_the_request() -> None:
    wide, _ = refusal("Unauthorized! Signature tidak valid")
    assert attempt(wide, 5, made=6) == (Status.PENDING, 6)


def test_any_other_outcome_clears_the_count() -> None:
    busy = Outcome(Verdict.TRANSIENT, "HTTP 503 from upstream", trips_breaker=True)
    assert attempt(busy, 2, made=3) == (Status.PENDING, 0)
