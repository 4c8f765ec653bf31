"""One injected clock: what Tenang(clock=...) is given stamps intake, times the breaker and
dates every admin answer, so a fake clock moves all of them together (HOUSE habit 4)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.ops.admin_api import iso
from tests.conftest import FakeClock, StartTenang, admin_headers, make_config
from tests.integration.test_admin_api import api, write

# Far from the real time, so a stamp read from time.time() cannot pass for it.
FAKE_NOW = 1_500_000_000.0


async def test_intake_the_breaker_and_the_admin_answers_read_the_injected_clock(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    clock = FakeClock(FAKE_NOW)
    config = make_config(tmp_path, bpjs_sim.url, breaker={"fail_max": 1,
                                                        "reset_timeout_s": 30.0})
    tenang = await start_tenang(config, clock=clock, relay_enabled=False)

    request_id = await write(http, tenang.gateway_url, "KB-CLOCK-1")
    doc = await api(http, "GET", f"{tenang.admin_url}/api/v1/requests/{request_id}")
    assert doc["received_at"] == iso(FAKE_NOW)

    breaker = tenang.breakers["antrean"]
    permit = breaker.try_acquire()
    assert permit is not None
    clock.advance(5.0)
    breaker.record(permit, failure=True)
    assert breaker.opened_at == FAKE_NOW + 5.0

    clock.advance(85.0)
    summary = (await api(http, "GET", f"{tenang.admin_url}/api/v1/summary"))["upstreams"]
    antrean = summary["antrean"]
    assert antrean["oldest_pending_age_s"] == 90.0
    assert antrean["breaker"]["state"] == "open"
    assert antrean["breaker"]["opened_at"] == iso(FAKE_NOW + 5.0)
    assert antrean["breaker"]["probe_at"] == iso(FAKE_NOW + 35.0)

    async with http.post(f"{tenang.admin_url}/api/v1/maintenance", headers=admin_headers(),
                         json={"upstream": "antrean", "reason": "clock test",
                               "duration_s": 60}) as resp:
        assert resp.status == 201, await resp.text()
        window = await resp.json()
    assert window["starts_at"] == iso(FAKE_NOW + 90.0)
    assert window["ends_at"] == iso(FAKE_NOW + 150.0)
    assert window["active"] is True  # active at fake time, long over in real time
