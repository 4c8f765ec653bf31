"""TokenBucket pacing, driven by a fake clock."""

from __future__ import annotations

import pytest

from proxy.policies.ratelimit import TokenBucket
from tests.conftest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    # A small epoch: the tests step by nanoseconds, which a float near 1.8e9 cannot hold.
    return FakeClock(1_000.0)


@pytest.fixture
def bucket(clock: FakeClock) -> TokenBucket:
    """4 tokens a second, bursts of up to 10, starting full."""
    return TokenBucket(per_second=4.0, burst=10.0, clock=clock)


def test_starts_full_and_grants_at_most_the_burst(bucket: TokenBucket, clock: FakeClock) -> None:
    assert bucket.take(25) == 10
    assert bucket.take(1) == 0


def test_grants_only_what_is_asked(bucket: TokenBucket, clock: FakeClock) -> None:
    assert bucket.take(3) == 3
    assert bucket.take(100) == 7


def test_burst_defaults_to_per_second_and_is_at_least_one(clock: FakeClock) -> None:
    assert TokenBucket(per_second=8.0, clock=clock).take(100) == 8
    slow = TokenBucket(per_second=0.5, clock=clock)
    assert slow.burst == 1.0
    assert slow.take(5) == 1


def test_refills_at_per_second(bucket: TokenBucket, clock: FakeClock) -> None:
    bucket.take(10)
    clock.advance(0.5)
    assert bucket.take(10) == 2
    clock.advance(0.125)  # half a token: none whole yet
    assert bucket.take(1) == 0
    clock.advance(0.125)
    assert bucket.take(1) == 1


def test_refill_is_capped_at_burst(bucket: TokenBucket, clock: FakeClock) -> None:
    bucket.take(10)
    clock.advance(3_600.0)
    assert bucket.take(1_000) == 10


def test_time_does_not_refill_before_it_passes(bucket: TokenBucket, clock: FakeClock) -> None:
    bucket.take(10)
    assert bucket.take(1) == 0
    assert bucket.take(1) == 0


def test_give_back_returns_unused_tokens(bucket: TokenBucket, clock: FakeClock) -> None:
    assert bucket.take(6) == 6
    bucket.give_back(2)
    assert bucket.take(100) == 6


def test_give_back_is_capped_at_burst(bucket: TokenBucket, clock: FakeClock) -> None:
    bucket.take(1)
    bucket.give_back(50)
    assert bucket.take(100) == 10


def test_wait_s_is_zero_with_a_token(bucket: TokenBucket, clock: FakeClock) -> None:
    assert bucket.wait_s() == 0.0
    bucket.take(9)
    assert bucket.wait_s() == 0.0


def test_wait_s_when_empty(bucket: TokenBucket, clock: FakeClock) -> None:
    bucket.take(10)
    assert bucket.wait_s() == pytest.approx(0.25)
    clock.advance(0.125)
    assert bucket.wait_s() == pytest.approx(0.125)


def test_waiting_wait_s_yields_a_token(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=3.0, burst=3.0, clock=clock)
    bucket.take(3)
    clock.advance(0.1)
    wait = bucket.wait_s()
    assert wait > 0
    assert bucket.take(1) == 0
    clock.advance(wait + 1e-9)
    assert bucket.take(1) == 1


# --- ramp after a maintenance window ------------------------------------------------------


def test_ramp_drops_saved_tokens_and_starts_slow(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=100.0, clock=clock)
    bucket.ramp_up(over_s=60.0, start_fraction=0.1)
    assert bucket.take(100) == 1  # at most one token survives the reset
    assert bucket.fraction() == pytest.approx(0.1)
    clock.advance(1.0)
    # ~10 tokens/s at the start of the ramp, not 100
    assert 9 <= bucket.take(1000) <= 11


def test_ramp_grants_the_integral_of_the_rising_rate(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=100.0, burst=1e9, clock=clock)
    bucket.ramp_up(over_s=60.0, start_fraction=0.1)
    bucket.take(1)
    granted = 0
    for _ in range(60):
        clock.advance(1.0)
        granted += bucket.take(10_000)
    # mean rate over the ramp is (0.1 + 1) / 2 of 100/s: 3,300 tokens in 60 s
    assert granted == pytest.approx(3300, abs=2)
    assert bucket.fraction() == 1.0


def test_full_rate_and_burst_after_the_ramp(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=50.0, clock=clock)
    bucket.ramp_up(over_s=10.0)
    clock.advance(100.0)
    assert bucket.take(1000) == 50
    clock.advance(1.0)
    assert bucket.take(1000) == 50


def test_saved_up_tokens_are_capped_by_the_ramp(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=100.0, clock=clock)
    bucket.ramp_up(over_s=100.0, start_fraction=0.1)
    clock.advance(10.0)  # nobody took tokens for 10 s, 19 % of the way up
    assert bucket.take(1000) == pytest.approx(19, abs=1)


def test_wait_reflects_the_ramped_rate(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=10.0, clock=clock)
    bucket.ramp_up(over_s=1000.0, start_fraction=0.1)
    bucket.take(1)
    assert bucket.wait_s() == pytest.approx(1.0, rel=0.01)  # 1 token/s at first


def test_zero_ramp_changes_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=10.0, clock=clock)
    bucket.ramp_up(over_s=0.0)
    assert bucket.take(100) == 10
