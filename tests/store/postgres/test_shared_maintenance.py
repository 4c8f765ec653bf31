"""Maintenance windows with two instances on one PostgreSQL store: a window scheduled
through one instance's admin port holds the other's breaker open at that one's next
reload from the store (``tick``: every ``check_interval_s``, or at a window's start or
end), and its cancellation releases it the same way. Nothing is cached for good."""

from __future__ import annotations

from pathlib import Path

from proxy.app import build_breakers
from proxy.config_ops import MaintenanceConfig
from proxy.ops.maintenance import Maintenance
from proxy.store.backend import Backend
from tests.conftest import FakeClock, make_config


async def test_a_window_scheduled_on_one_instance_holds_the_others_breaker(
        tmp_path: Path, backends: tuple[Backend, Backend]) -> None:
    cfg = make_config(tmp_path, "http://127.0.0.1:9")
    clock = FakeClock()
    breakers_b = build_breakers(cfg, clock=clock)
    a = Maintenance(backends[0].schedules, build_breakers(cfg, clock=clock),
                    MaintenanceConfig(ramp_s=0.0), clock=clock)
    b = Maintenance(backends[1].schedules, breakers_b, MaintenanceConfig(ramp_s=0.0),
                    clock=clock)

    window = await a.schedule("antrean", clock(), clock() + 3600, "BPJS upgrade", "opa")
    assert b.active("antrean", clock()) is None  # not reloaded yet
    await b.tick()
    assert b.active("antrean", clock()) == window
    assert b.quiet("antrean", clock()) and breakers_b["antrean"].forced

    await a.cancel(window.id, "opa")
    clock.advance(1)
    await b.tick()
    assert b.active("antrean", clock()) is None and not breakers_b["antrean"].forced
