"""AsyncBreaker: permits, opening, one half-open probe, stale results, listener."""

from __future__ import annotations

import time

from proxy.policies.breaker import AsyncBreaker, BreakerState, Permit
from tests.conftest import FakeClock

FAR = 10_000_000_000.0  # a `now` long after any reset timeout


class Changes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, BreakerState, BreakerState]] = []

    def __call__(self, name: str, old: BreakerState, new: BreakerState) -> None:
        self.seen.append((name, old, new))

    @property
    def states(self) -> list[tuple[str, str]]:
        return [(old.value, new.value) for _, old, new in self.seen]


def acquire(b: AsyncBreaker, now: float | None = None) -> Permit:
    permit = b.try_acquire(now)
    assert permit is not None
    return permit


def fail(b: AsyncBreaker, times: int) -> None:
    for _ in range(times):
        b.record(acquire(b), failure=True)


def opened(fail_max: int = 3, reset_timeout_s: float = 30.0,
           changes: Changes | None = None) -> AsyncBreaker:
    b = AsyncBreaker("antrean", fail_max, reset_timeout_s, on_change=changes)
    fail(b, fail_max)
    assert b.state is BreakerState.OPEN
    return b


def test_closed_breaker_grants_plain_permits() -> None:
    b = AsyncBreaker("antrean", fail_max=3, reset_timeout_s=30.0)
    assert b.state is BreakerState.CLOSED
    permits = [b.try_acquire() for _ in range(10)]
    assert all(p is not None and not p.probe for p in permits)
    assert b.opened_at is None
    assert b.probe_at is None


def test_opens_after_fail_max_failures() -> None:
    b = AsyncBreaker("antrean", fail_max=3, reset_timeout_s=30.0)
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN
    assert b.try_acquire() is None


def test_opened_at_and_probe_at() -> None:
    before = time.time()
    b = opened(reset_timeout_s=30.0)
    after = time.time()
    assert b.opened_at is not None
    assert before <= b.opened_at <= after
    assert b.probe_at == b.opened_at + 30.0


def test_no_probe_before_reset_timeout() -> None:
    b = opened(reset_timeout_s=30.0)
    assert b.probe_at is not None
    assert b.try_acquire(now=b.probe_at - 0.01) is None
    assert b.state is BreakerState.OPEN


def test_exactly_one_probe_after_reset_timeout() -> None:
    b = opened()
    probe = acquire(b, now=FAR)
    assert probe.probe
    assert b.state is BreakerState.HALF_OPEN
    assert b.probe_at is None
    assert b.try_acquire(now=FAR) is None
    assert b.try_acquire() is None


def test_the_probe_waits_for_the_injected_clock_to_pass_probe_at() -> None:
    clock = FakeClock()
    b = AsyncBreaker("antrean", 3, 30.0, clock=clock)
    opened_at = clock.now
    fail(b, 3)
    assert b.opened_at == opened_at
    assert b.probe_at == opened_at + 30.0
    clock.advance(29.9)
    assert b.try_acquire() is None
    clock.advance(0.1)
    probe = acquire(b)
    assert probe.probe
    assert b.state is BreakerState.HALF_OPEN
    assert b.try_acquire() is None  # one probe at a time


def test_probe_success_closes() -> None:
    b = opened()
    b.record(acquire(b, now=FAR), failure=False)
    assert b.state is BreakerState.CLOSED
    assert b.opened_at is None
    assert b.probe_at is None
    permit = acquire(b)
    assert not permit.probe


def test_closing_resets_the_failure_count() -> None:
    b = opened(fail_max=3)
    b.record(acquire(b, now=FAR), failure=False)
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN


def test_probe_failure_reopens_with_a_new_timer() -> None:
    b = opened(reset_timeout_s=30.0)
    first_opened = b.opened_at
    assert first_opened is not None
    b.record(acquire(b, now=FAR), failure=True)
    assert b.state is BreakerState.OPEN
    assert b.opened_at is not None
    assert b.opened_at >= first_opened
    assert b.probe_at == b.opened_at + 30.0
    assert b.try_acquire() is None
    # The next probe is granted once the new timer runs out.
    assert acquire(b, now=FAR).probe


def test_cancelled_probe_frees_the_probe_slot() -> None:
    b = opened()
    probe = acquire(b, now=FAR)
    assert b.try_acquire(now=FAR) is None
    b.cancel(probe)
    assert b.state is BreakerState.HALF_OPEN
    again = acquire(b, now=FAR)
    assert again.probe
    b.record(again, failure=False)
    assert b.state is BreakerState.CLOSED


def test_cancelling_a_plain_permit_changes_nothing() -> None:
    b = AsyncBreaker("antrean", fail_max=1, reset_timeout_s=30.0)
    b.cancel(acquire(b))
    assert b.state is BreakerState.CLOSED


def test_late_failures_from_before_opening_are_ignored() -> None:
    b = AsyncBreaker("antrean", fail_max=2, reset_timeout_s=30.0)
    stale = [acquire(b) for _ in range(4)]
    b.record(stale[0], failure=True)
    b.record(stale[1], failure=True)
    assert b.state is BreakerState.OPEN
    opened_at = b.opened_at
    b.record(stale[2], failure=True)
    assert b.opened_at == opened_at
    # Probe succeeds: closed again; the two remaining old failures cannot re-open it.
    b.record(acquire(b, now=FAR), failure=False)
    assert b.state is BreakerState.CLOSED
    b.record(stale[2], failure=True)
    b.record(stale[3], failure=True)
    assert b.state is BreakerState.CLOSED


def test_late_success_from_before_opening_does_not_close() -> None:
    b = AsyncBreaker("antrean", fail_max=1, reset_timeout_s=30.0)
    stale = acquire(b)
    b.record(acquire(b), failure=True)
    assert b.state is BreakerState.OPEN
    b.record(stale, failure=False)
    assert b.state is BreakerState.OPEN
    # ...nor during the half-open probe.
    probe = acquire(b, now=FAR)
    b.record(stale, failure=False)
    assert b.state is BreakerState.HALF_OPEN
    assert b.try_acquire(now=FAR) is None
    b.record(probe, failure=True)
    assert b.state is BreakerState.OPEN


def test_non_tripping_result_resets_the_failure_count() -> None:
    b = AsyncBreaker("antrean", fail_max=3, reset_timeout_s=30.0)
    fail(b, 2)
    b.record(acquire(b), failure=False)
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN


def test_listener_sees_closed_open_half_open_closed() -> None:
    changes = Changes()
    b = opened(fail_max=2, changes=changes)
    b.record(acquire(b, now=FAR), failure=False)
    assert changes.states == [("closed", "open"), ("open", "half-open"),
                              ("half-open", "closed")]
    assert {name for name, _, _ in changes.seen} == {"antrean"}


def test_listener_sees_failed_probe_reopen() -> None:
    changes = Changes()
    b = opened(fail_max=1, changes=changes)
    b.record(acquire(b, now=FAR), failure=True)
    assert changes.states == [("closed", "open"), ("open", "half-open"),
                              ("half-open", "open")]


def test_listener_is_quiet_while_nothing_changes() -> None:
    changes = Changes()
    b = AsyncBreaker("antrean", fail_max=3, reset_timeout_s=30.0, on_change=changes)
    fail(b, 2)
    b.record(acquire(b), failure=False)
    assert changes.seen == []


# --- maintenance: forced open and release --------------------------------------------


def test_forced_open_grants_nothing_not_even_a_probe() -> None:
    changes = Changes()
    b = AsyncBreaker("antrean", fail_max=3, reset_timeout_s=30.0, on_change=changes)
    b.force_open()
    assert b.forced
    assert b.state is BreakerState.OPEN
    assert b.probe_at is None
    assert b.try_acquire(now=FAR) is None
    assert changes.states == [("closed", "open")]


def test_force_open_is_idempotent_and_quiet_when_already_open() -> None:
    changes = Changes()
    b = opened(changes=changes)
    b.force_open()
    b.force_open()
    assert changes.states == [("closed", "open")]
    assert b.try_acquire(now=FAR) is None


def test_results_of_sends_from_before_forcing_are_ignored() -> None:
    b = AsyncBreaker("antrean", fail_max=1, reset_timeout_s=30.0)
    plain = acquire(b)
    b.force_open()
    b.record(plain, failure=False)
    assert b.state is BreakerState.OPEN and b.forced


def test_probe_in_flight_when_forced_cannot_close_it() -> None:
    b = opened()
    probe = acquire(b, now=FAR)
    b.force_open()
    b.record(probe, failure=False)
    assert b.state is BreakerState.OPEN and b.forced
    b.release()
    # The stale probe's answer did not take the new probe slot either.
    assert acquire(b, now=FAR).probe


def test_release_hands_back_to_one_half_open_probe() -> None:
    changes = Changes()
    b = AsyncBreaker("antrean", fail_max=3, reset_timeout_s=30.0, on_change=changes)
    b.force_open()
    b.release()
    assert not b.forced
    assert b.state is BreakerState.HALF_OPEN
    probe = acquire(b)
    assert probe.probe
    assert b.try_acquire() is None
    b.record(probe, failure=False)
    assert b.state is BreakerState.CLOSED
    assert changes.states == [("closed", "open"), ("open", "half-open"),
                              ("half-open", "closed")]


def test_failed_probe_after_release_reopens_normally() -> None:
    b = AsyncBreaker("antrean", fail_max=3, reset_timeout_s=30.0)
    b.force_open()
    b.release()
    b.record(acquire(b), failure=True)
    assert b.state is BreakerState.OPEN
    assert not b.forced
    assert b.probe_at is not None


def test_release_without_force_changes_nothing() -> None:
    changes = Changes()
    b = opened(changes=changes)
    b.release()
    assert b.state is BreakerState.OPEN
    assert changes.states == [("closed", "open")]
