"""Retry backoff: exact exponential schedule without jitter, bounded and seeded with it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.policies.retry import RetryPolicy, backoff_delay_s


def policy(initial: float = 2.0, cap: float = 300.0, jitter: str = "none") -> RetryPolicy:
    return RetryPolicy(initial_delay_s=initial, max_delay_s=cap,
                       jitter=jitter)  # type: ignore[arg-type]


@pytest.mark.parametrize(("attempt", "expected"), [
    (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 32.0), (6, 64.0), (7, 128.0), (8, 256.0),
    (9, 300.0), (10, 300.0), (100, 300.0), (10_000, 300.0),
])
def test_no_jitter_is_exponential_capped(attempt: int, expected: float) -> None:
    assert backoff_delay_s(attempt, policy(), random.Random(0)) == expected


initials = st.floats(min_value=0.01, max_value=100.0)
cap_factors = st.floats(min_value=1.0, max_value=10_000.0)
attempts = st.integers(min_value=1, max_value=200)
seeds = st.integers(min_value=0, max_value=2**64 - 1)


@given(attempt=attempts, initial=initials, factor=cap_factors, seed=seeds)
def test_no_jitter_property(attempt: int, initial: float, factor: float, seed: int) -> None:
    cap = initial * factor
    expected = min(initial * 2.0 ** (attempt - 1), cap)
    delay = backoff_delay_s(attempt, policy(initial, cap), random.Random(seed))
    assert delay == pytest.approx(expected, rel=1e-9)


@given(attempt=attempts, initial=initials, factor=cap_factors, seed=seeds)
def test_full_jitter_stays_within_bounds(attempt: int, initial: float, factor: float,
                                         seed: int) -> None:
    cap = initial * factor
    ceiling = min(initial * 2.0 ** (attempt - 1), cap)
    delay = backoff_delay_s(attempt, policy(initial, cap, "full"), random.Random(seed))
    assert initial / 10 <= delay <= ceiling * (1 + 1e-9)


@given(attempt=attempts, initial=initials, factor=cap_factors, seed=seeds)
def test_same_seed_gives_same_delay(attempt: int, initial: float, factor: float,
                                    seed: int) -> None:
    p = policy(initial, initial * factor, "full")
    assert backoff_delay_s(attempt, p, random.Random(seed)) == \
        backoff_delay_s(attempt, p, random.Random(seed))


def test_full_jitter_spreads_delays_across_seeds() -> None:
    p = policy(2.0, 300.0, "full")
    delays = {backoff_delay_s(8, p, random.Random(seed)) for seed in range(50)}
    assert len(delays) > 40
    assert min(delays) < 64.0 < max(delays)  # spread over [0.2, 256], not bunched at the top


class _ZeroRng(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_full_jitter_has_a_floor_of_a_tenth_of_the_initial_delay() -> None:
    assert backoff_delay_s(3, policy(2.0, 300.0, "full"), _ZeroRng()) == pytest.approx(0.2)

