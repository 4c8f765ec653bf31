"""Pacing: a lane alone on its store paces itself; lanes of instances sharing a store take
from one bucket in it, so together they send at ``rate.per_second`` (the HTTP twin on
PostgreSQL: tests/integration/test_postgres_instances.py)."""

from __future__ import annotations

from pathlib import Path

from proxy.delivery.pacing import SHARED_BURST_S, LocalPacer, SharedPacer, pacer_for
from proxy.store.in_process import InProcessCoordination
from tests.conftest import FakeClock, make_config


class SharedStore(InProcessCoordination):
    """In-process verbs, standing in for a store other instances share."""

    @property
    def shared(self) -> bool:
        return True


def test_a_lane_alone_on_its_store_keeps_its_own_bucket(tmp_path: Path) -> None:
    up = make_config(tmp_path, "http://127.0.0.1:9").upstreams[0]
    clock = FakeClock()
    assert isinstance(pacer_for(up, None, clock), LocalPacer)
    assert isinstance(pacer_for(up, InProcessCoordination(), clock), LocalPacer)
    assert isinstance(pacer_for(up, SharedStore(), clock), SharedPacer)


async def test_instances_sharing_a_store_together_send_at_the_rate(tmp_path: Path) -> None:
    up = make_config(tmp_path, "http://127.0.0.1:9", rate={"per_second": 100.0}).upstreams[0]
    clock, store = FakeClock(), SharedStore()
    pacers = [SharedPacer(up, store, clock) for _ in range(3)]
    burst = sum([await p.take(100) for p in pacers])
    assert burst == 100 * SHARED_BURST_S, "one burst for all, not one each"
    sent = 0
    for _ in range(250):  # 5 s in steps of 0.02 s, each instance asking every step
        clock.advance(0.02)
        sent += sum([await p.take(5) for p in pacers])
    assert 499 <= sent <= 500
    await pacers[0].give_back(3)
    assert await pacers[1].take(5) == 3, "what one gives back another may take"


async def test_after_a_lull_a_second_holds_the_rate_and_a_small_burst(tmp_path: Path) -> None:
    up = make_config(tmp_path, "http://127.0.0.1:9", rate={"per_second": 100.0}).upstreams[0]
    clock, store = FakeClock(), SharedStore()
    pacers = [SharedPacer(up, store, clock) for _ in range(3)]
    clock.advance(60.0)  # nothing sent for a minute: the bucket saves up only its burst
    sent = 0
    for _ in range(100):  # the next second, in steps of 0.01 s
        sent += sum([await p.take(100) for p in pacers])
        clock.advance(0.01)
    assert sent <= 100 * (1 + SHARED_BURST_S), sent


async def test_after_a_window_the_shared_rate_ramps_up(tmp_path: Path) -> None:
    up = make_config(tmp_path, "http://127.0.0.1:9", rate={"per_second": 100.0}).upstreams[0]
    clock, store = FakeClock(), SharedStore()
    pacer = SharedPacer(up, store, clock)
    await pacer.take(100)
    pacer.ramp_up(10.0)
    assert pacer.fraction() < 0.2
    clock.advance(1.0)
    assert await pacer.take(100) < 30, "the first second of the ramp, not the full rate"
    clock.advance(20.0)
    assert pacer.fraction() == 1.0
    assert await pacer.take(1000) == 100 * SHARED_BURST_S, "the whole burst again"
