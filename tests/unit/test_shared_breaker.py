"""SharedBreaker: instances sharing a store share each upstream's breaker. Exactly one
wins each move and the others take its state on; the probe is one lease for all of
them. Driven by hand (``sync``) on a fake clock over one in-process Coordination (the
PostgreSQL twin of these runs over HTTP in tests/integration/test_postgres_instances.py)."""

from __future__ import annotations

import asyncio

import pytest

from proxy.delivery.shared_breaker import SharedBreaker
from proxy.policies.breaker import AsyncBreaker, BreakerState, Permit
from proxy.store.in_process import InProcessCoordination
from tests.conftest import FakeClock

FAIL_MAX = 3
RESET_S = 5.0
LEASE_S = 3.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def instances(clock: FakeClock, n: int = 3) -> list[SharedBreaker]:
    store = InProcessCoordination()
    return [SharedBreaker(AsyncBreaker("antrean", FAIL_MAX, RESET_S, clock=clock), store,
                          f"instance-{i}", clock, LEASE_S) for i in range(n)]


def fail(b: AsyncBreaker, times: int = FAIL_MAX) -> None:
    for _ in range(times):
        permit = b.try_acquire()
        assert permit is not None
        b.record(permit, failure=True)


async def sync(*shared: SharedBreaker) -> None:
    await asyncio.gather(*(s.sync() for s in shared))


def states(shared: list[SharedBreaker]) -> list[BreakerState]:
    return [s.breaker.state for s in shared]


async def test_an_instance_that_opens_the_breaker_opens_it_for_all(clock: FakeClock) -> None:
    a, b, c = shared = instances(clock)
    await sync(*shared)
    fail(a.breaker)
    assert states(shared) == ["open", "closed", "closed"], "the others still use their cache"
    await sync(a)
    await sync(b, c)
    assert states(shared) == ["open"] * 3
    assert {s.breaker.opened_at for s in shared} == {clock.now}
    assert [s.breaker.try_acquire() for s in shared] == [None] * 3


async def test_of_instances_opening_it_at_once_exactly_one_wins(clock: FakeClock) -> None:
    shared = instances(clock)
    await sync(*shared)
    for i, s in enumerate(shared):
        clock.now += i  # each opens at its own time
        fail(s.breaker)
    await sync(*shared)
    record = await shared[0]._store.breaker("antrean")
    assert (record.state, record.generation) == ("open", 1), "one move, not three"
    await sync(*shared)
    assert {s.breaker.opened_at for s in shared} == {record.opened_at}, \
        "the losers took the winner's opening time on"


async def test_all_instances_together_send_one_probe(clock: FakeClock) -> None:
    shared = instances(clock)
    await sync(*shared)
    fail(shared[0].breaker)
    await sync(*shared)
    clock.advance(RESET_S - 0.1)
    await sync(*shared)
    assert [s.breaker.try_acquire() for s in shared] == [None] * 3, "not yet due"

    clock.advance(0.1)
    await sync(*shared)
    permits = [s.breaker.try_acquire() for s in shared]
    probing = [i for i, p in enumerate(permits) if p is not None]
    assert len(probing) == 1 and permits[probing[0]] is not None
    assert states(shared) == ["half-open"] * 3, "the lease moved the breaker for all"
    await sync(*shared)
    assert [s.breaker.try_acquire() for s in shared] == [None] * 3, "one probe out at a time"

    prober = shared[probing[0]].breaker
    permit = permits[probing[0]]
    assert permit is not None and permit.probe
    clock.advance(0.2)
    prober.record(permit, failure=True)
    await sync(*shared)
    await sync(*shared)
    assert states(shared) == ["open"] * 3
    assert {s.breaker.probe_at for s in shared} == {clock.now + RESET_S}, \
        "the failed probe re-timed the next one, for all"


async def probe_leased(clock: FakeClock, opener: int
                       ) -> tuple[list[SharedBreaker], SharedBreaker, Permit]:
    """Three instances, the breaker opened by ``opener`` and its reset timeout run out:
    the instances, the one holding the probe's lease and the probe's permit."""
    shared = instances(clock)
    fail(shared[opener].breaker)
    await sync(*shared)
    clock.advance(RESET_S)
    await sync(*shared)
    (holder,) = [s for s in shared if s.breaker._probe_lease_until is not None]
    permit = holder.breaker.try_acquire()
    assert permit is not None
    return shared, holder, permit


async def test_a_probe_that_succeeds_closes_the_breaker_for_all(clock: FakeClock) -> None:
    shared, holder, permit = await probe_leased(clock, opener=1)
    holder.breaker.record(permit, failure=False)
    await sync(holder)
    await sync(*shared)
    assert states(shared) == ["closed"] * 3
    assert all(s.breaker.try_acquire() is not None for s in shared)


async def test_a_probe_given_back_unsent_stays_with_its_lease_holder(clock: FakeClock) -> None:
    shared, holder, permit = await probe_leased(clock, opener=0)
    holder.breaker.cancel(permit)  # nothing was due
    await sync(*shared)
    assert holder.breaker.try_acquire() is not None
    assert [s.breaker.try_acquire() for s in shared if s is not holder] == [None, None]


async def test_a_dead_holders_probe_lease_passes_on_after_it_expires(clock: FakeClock) -> None:
    shared = instances(clock)
    fail(shared[0].breaker)
    await sync(*shared)
    clock.advance(RESET_S)
    await sync(shared[0])  # leases the probe, then dies
    assert shared[0].breaker.try_acquire() is not None
    others = shared[1:]
    await sync(*others)
    assert [s.breaker.try_acquire() for s in others] == [None, None]
    clock.advance(LEASE_S)
    await sync(*others)
    assert sum(s.breaker.try_acquire() is not None for s in others) == 1


async def test_a_new_instance_starts_with_the_shared_state(clock: FakeClock) -> None:
    a, b = instances(clock, 2)
    fail(a.breaker)
    await sync(a)
    await b.start()
    try:
        assert b.breaker.state is BreakerState.OPEN and b.breaker.try_acquire() is None
    finally:
        await b.stop()
