"""Maintenance windows on the memory store with a fake clock: schedule, apply, end,
cancel, quiet period, validation, and the background task."""

from __future__ import annotations

import time

import pytest

from proxy.config_ops import MaintenanceConfig
from proxy.ops.maintenance import InvalidWindow, Maintenance, UnknownWindow
from proxy.policies.breaker import AsyncBreaker, BreakerState
from proxy.store.memory import memory_backend
from tests.conftest import FakeClock, wait_until

T0 = 1_800_000_000.0


class Setup:
    def __init__(self, ramp_s: float = 60.0, check_interval_s: float = 5.0) -> None:
        self.clock = FakeClock(T0)
        self.backend = memory_backend()
        self.breakers = {name: AsyncBreaker(name, 3, 30.0) for name in ("antrean", "vclaim")}
        self.changes: list[tuple[str, bool]] = []
        self.m = Maintenance(self.backend.schedules, self.breakers,
                             MaintenanceConfig(ramp_s=ramp_s, check_interval_s=check_interval_s),
                             clock=self.clock,
                             on_change=lambda up, on: self.changes.append((up, on)))

    async def tick_at(self, t: float) -> None:
        self.clock.now = t
        await self.m.tick()


@pytest.fixture
async def s() -> Setup:
    setup = Setup()
    await setup.backend.open()
    return setup


async def test_window_starting_now_forces_the_breaker_open(s: Setup) -> None:
    w = await s.m.schedule("antrean", T0, T0 + 3600, "BPJS maintenance", "ops")
    assert s.m.active("antrean", T0) == w
    assert s.breakers["antrean"].forced
    assert s.breakers["antrean"].state is BreakerState.OPEN
    assert s.breakers["antrean"].try_acquire() is None
    assert not s.breakers["vclaim"].forced
    assert s.changes == [("antrean", True)]


async def test_future_window_applies_when_it_starts_and_releases_when_it_ends(
        s: Setup) -> None:
    await s.m.schedule("antrean", T0 + 100, T0 + 200, "announced", "ops")
    assert not s.breakers["antrean"].forced
    assert s.m.next_boundary(T0) == T0 + 100
    await s.tick_at(T0 + 100)
    assert s.breakers["antrean"].forced
    await s.tick_at(T0 + 199.9)
    assert s.breakers["antrean"].forced
    await s.tick_at(T0 + 200)
    b = s.breakers["antrean"]
    assert not b.forced
    assert b.state is BreakerState.HALF_OPEN  # one probe first
    assert s.changes == [("antrean", True), ("antrean", False)]


async def test_cancel_ends_an_active_window_at_once(s: Setup) -> None:
    w = await s.m.schedule("antrean", T0, None, "until further notice", "ops")
    s.clock.now = T0 + 10
    await s.m.cancel(w.id, "ops2")
    assert not s.breakers["antrean"].forced
    assert s.m.active("antrean", T0 + 10) is None
    [stored] = await s.m.windows(include_past=True)
    assert stored.cancelled_at == T0 + 10
    assert await s.m.windows() == []


async def test_cancel_is_idempotent_and_unknown_ids_are_refused(s: Setup) -> None:
    w = await s.m.schedule("antrean", T0 + 50, T0 + 100, "later", "ops")
    await s.m.cancel(w.id, "ops")
    await s.m.cancel(w.id, "ops")
    with pytest.raises(UnknownWindow):
        await s.m.cancel(999, "ops")
    await s.tick_at(T0 + 60)
    assert not s.breakers["antrean"].forced


async def test_overlapping_windows_hold_until_the_last_ends(s: Setup) -> None:
    await s.m.schedule("antrean", T0, T0 + 100, "first", "ops")
    second = await s.m.schedule("antrean", T0 + 50, T0 + 300, "second", "ops")
    await s.tick_at(T0 + 150)
    assert s.m.active("antrean", T0 + 150) == second
    assert s.breakers["antrean"].forced
    await s.tick_at(T0 + 300)
    assert not s.breakers["antrean"].forced


async def test_quiet_during_the_window_and_its_ramp(s: Setup) -> None:
    await s.m.schedule("antrean", T0 + 10, T0 + 100, "announced", "ops")
    assert not s.m.quiet("antrean", T0)
    assert s.m.quiet("antrean", T0 + 10)
    assert s.m.quiet("antrean", T0 + 159)  # ramp_s = 60 after the end
    assert not s.m.quiet("antrean", T0 + 160)
    assert not s.m.quiet("vclaim", T0 + 50)


async def test_windows_lists_current_and_future_by_default(s: Setup) -> None:
    past = await s.m.schedule("antrean", T0 - 100, T0 + 1, "short", "ops")
    future = await s.m.schedule("vclaim", T0 + 100, T0 + 200, "later", "ops")
    s.clock.now = T0 + 2
    assert await s.m.windows() == [future]
    assert await s.m.windows(include_past=True) == [past, future]
    assert await s.m.windows("antrean", include_past=True) == [past]


@pytest.mark.parametrize(("upstream", "starts", "ends", "reason", "actor", "words"), [
    ("nope", T0, None, "r", "ops", "unknown upstream"),
    ("antrean", T0, T0, "r", "ops", "after starts_at"),
    ("antrean", T0 - 100, T0 - 1, "r", "ops", "already over"),
    ("antrean", T0, None, "  ", "ops", "reason"),
    ("antrean", T0, None, "x" * 501, "ops", "reason"),
    ("antrean", T0, None, "r", "", "actor"),
    ("antrean", float("nan"), None, "r", "ops", "times from 0"),
    # Past what a date can show: stored, then a 500 when the audit entry named it.
    ("antrean", T0, 1e308, "r", "ops", "times from 0"),
    ("antrean", T0, float("inf"), "r", "ops", "times from 0"),
])
async def test_invalid_windows_are_refused(s: Setup, upstream: str, starts: float,
                                           ends: float | None, reason: str, actor: str,
                                           words: str) -> None:
    with pytest.raises(InvalidWindow, match=words):
        await s.m.schedule(upstream, starts, ends, reason, actor)
    assert await s.backend.schedules.maintenance_windows() == []


async def test_a_restarted_service_applies_windows_from_the_store(s: Setup) -> None:
    await s.m.schedule("antrean", T0, T0 + 100, "announced", "ops")
    fresh = {name: AsyncBreaker(name, 3, 30.0) for name in ("antrean", "vclaim")}
    again = Maintenance(s.backend.schedules, fresh, clock=s.clock)
    await again.tick()
    assert fresh["antrean"].forced


async def test_background_task_applies_a_window_starting_soon() -> None:
    # Real clock here: the task sleeps until the next boundary, not a whole interval.
    setup = Setup(check_interval_s=30.0)
    m = Maintenance(setup.backend.schedules, setup.breakers,
                    MaintenanceConfig(ramp_s=0.0, check_interval_s=30.0))
    await setup.backend.open()
    m.start()
    try:
        now = time.time()
        await m.schedule("antrean", now + 0.2, now + 0.4, "short", "ops")
        await wait_until(lambda: setup.breakers["antrean"].forced, timeout_s=5,
                         what="the window to start")
        await wait_until(lambda: not setup.breakers["antrean"].forced, timeout_s=5,
                         what="the window to end")
    finally:
        await m.stop()
        await m.stop()
