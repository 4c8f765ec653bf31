"""TokenBucket pacing, driven by a fake clock."""

from __future__ import annotations

import pytest

from proxy.policies.ratelimit import TokenBucket


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_starts_full_and_grants_at_most_the_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    assert bucket.take(25) == 10
    assert bucket.take(1) == 0


def test_grants_only_what_is_asked(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    assert bucket.take(3) == 3
    assert bucket.take(100) == 7


def test_burst_defaults_to_per_second_and_is_at_least_one(clock: FakeClock) -> None:
    assert TokenBucket(per_second=8.0, clock=clock).take(100) == 8
    slow = TokenBucket(per_second=0.5, clock=clock)
    assert slow.burst == 1.0
    assert slow.take(5) == 1


def test_refills_at_per_second(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    bucket.take(10)
    clock.advance(0.5)
    assert bucket.take(10) == 2
    clock.advance(0.125)  # half a token: none whole yet
    assert bucket.take(1) == 0
    clock.advance(0.125)
    assert bucket.take(1) == 1


def test_refill_is_capped_at_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    bucket.take(10)
    clock.advance(3_600.0)
    assert bucket.take(1_000) == 10


def test_time_does_not_refill_before_it_passes(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    bucket.take(10)
    assert bucket.take(1) == 0
    assert bucket.take(1) == 0


def test_give_back_returns_unused_tokens(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    assert bucket.take(6) == 6
    bucket.give_back(2)
    assert bucket.take(100) == 6


def test_give_back_is_capped_at_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    bucket.take(1)
    bucket.give_back(50)
    assert bucket.take(100) == 10


def test_wait_s_is_zero_with_a_token(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
    assert bucket.wait_s() == 0.0
    bucket.take(9)
    assert bucket.wait_s() == 0.0


def test_wait_s_when_empty(clock: FakeClock) -> None:
    bucket = TokenBucket(per_second=4.0, burst=10.0, clock=clock)
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
