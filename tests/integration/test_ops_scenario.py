"""Operations through a running Tenang (SQLite, loopback HTTP): /metrics after a scripted
outage and recovery, and a maintenance window set through the admin API that queues
quietly, pages nobody and ends in a ramped drain."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config_ops import MaintenanceConfig, NotifyConfig, WebhookConfig
from tests.bpjs_support import OUTAGE, booking, outcomes
from tests.conftest import StartTenang, admin_headers, make_config, wait_until
from tests.integration.metrics_scrape import Samples, scrape, v
from tests.integration.notify_receivers import HttpReceiver, http_receiver

__all__ = ["http_receiver"]

async def write(http: aiohttp.ClientSession, tenang: Tenang, kodebooking: str) -> str:
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         json=booking(kodebooking)) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["X-Tenang-Request-Id"]


async def test_metrics_after_an_outage_and_recovery(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    config = make_config(tmp_path, bpjs_sim.url, breaker={"fail_max": 3, "reset_timeout_s": 0.3},
                         retry={"max_attempts": 50, "initial_delay_s": 0.05,
                                "max_delay_s": 0.1})
    await bpjs_sim.set_mode(**OUTAGE)
    tenang: Tenang = await start_tenang(config)
    tenang.metrics.summary_ttl_s = 0  # exact values on every scrape
    for i in range(3):
        await write(http, tenang, f"KB-MET-{i}")

    seen: Samples = {}

    async def circuit_open() -> bool:
        seen.update(await scrape(http, tenang))
        return v(seen, "tenang_circuit_state", upstream="antrean") == 2

    await wait_until(circuit_open, what="tenang_circuit_state 2")
    depth = {st: v(seen, "tenang_queue_depth", upstream="antrean", status=st)
             for st in ("pending", "in_flight", "succeeded", "dead")}
    assert depth["pending"] + depth["in_flight"] == 3
    assert depth["succeeded"] == depth["dead"] == 0
    assert v(seen, "tenang_oldest_pending_age_seconds", upstream="antrean") > 0
    opened = v(seen, "tenang_circuit_transitions_total", upstream="antrean", to="open")
    half = v(seen, "tenang_circuit_transitions_total", upstream="antrean", to="half-open")
    assert opened >= 1 and half == opened - 1  # each failed probe re-opened it
    assert v(seen, "tenang_maintenance_active", upstream="antrean") == 0

    await bpjs_sim.set_mode("up")
    final: Samples = {}

    async def recovered() -> bool:
        final.update(await scrape(http, tenang))
        return v(final, "tenang_queue_depth", upstream="antrean", status="succeeded") == 3 \
            and v(final, "tenang_circuit_state", upstream="antrean") == 0

    await wait_until(recovered, what="all delivered and the circuit closed")
    assert v(final, "tenang_queue_depth", upstream="antrean", status="pending") == 0
    assert v(final, "tenang_oldest_pending_age_seconds", upstream="antrean") == 0
    assert v(final, "tenang_circuit_transitions_total", upstream="antrean", to="closed") == 1
    assert v(final, "tenang_circuit_transitions_total", upstream="antrean", to="open") == \
        v(final, "tenang_circuit_transitions_total", upstream="antrean", to="half-open")
    failures = len(outcomes(bpjs_sim, "flaky"))
    accepted = [value for (name, labels), value in final.items()
                if name == "tenang_requests_accepted_total"
                and ("upstream", "antrean") in labels]
    assert sum(accepted) == 3  # whatever the endpoint rule names POST antrean/add
    assert v(final, "tenang_intake_duration_seconds_count") == 3
    assert v(final, "tenang_deliveries_total", upstream="antrean",
             outcome="transient") == failures
    assert v(final, "tenang_deliveries_total", upstream="antrean", outcome="success") == 3
    assert v(final, "tenang_delivery_attempt_duration_seconds_count",
             upstream="antrean") == failures + 3


async def api(http: aiohttp.ClientSession, method: str, url: str,
              body: dict[str, Any] | None = None, status: int = 200) -> Any:
    async with http.request(method, url, json=body, headers=admin_headers()) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def test_maintenance_window_queues_quietly_then_drains_with_a_ramp(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    config = dataclasses.replace(
        make_config(tmp_path, bpjs_sim.url, rate={"per_second": 50.0}),
        maintenance=MaintenanceConfig(ramp_s=1.0, check_interval_s=0.05),
        notify=NotifyConfig(breaker_open_after_s=0.0, window_s=0.0, check_interval_s=3600,
                            webhook=WebhookConfig(url=f"{http_receiver.url}/hook")))
    tenang: Tenang = await start_tenang(config)
    tenang.metrics.summary_ttl_s = 0
    base = f"{tenang.admin_url}/api/v1/maintenance"
    window = await api(http, "POST", base, {"upstream": "antrean",
                                            "reason": "BPJS: pemeliharaan server"}, 201)
    assert window["active"] and window["ends_at"] is None
    assert window["created_by"] == "api-token"
    assert tenang.breakers["antrean"].forced

    ids = [await write(http, tenang, f"KB-MNT-{i}") for i in range(20)]
    samples = await scrape(http, tenang)
    assert v(samples, "tenang_circuit_state", upstream="antrean") == 2
    assert v(samples, "tenang_maintenance_active", upstream="antrean") == 1
    assert v(samples, "tenang_queue_depth", upstream="antrean", status="pending") == 20
    assert tenang.breakers["antrean"].try_acquire() is None
    assert bpjs_sim.state.log == []
    await tenang.notifier.check()  # circuit open past breaker_open_after_s, but quiet
    await tenang.notifier.flush()
    assert http_receiver.posts == []

    cancelled = await api(http, "POST", f"{base}/{window['id']}/cancel")
    assert cancelled["cancelled_at"] is not None and not cancelled["active"]
    assert not tenang.breakers["antrean"].forced
    assert tenang.relay is not None
    assert tenang.relay.lanes["antrean"].pacer.fraction() < 1.0  # the drain ramps up

    async def delivered() -> bool:
        return len(outcomes(bpjs_sim, "ok")) == len(ids)

    await wait_until(delivered, what="the queued requests to be delivered")
    times = sorted(e["time"] for e in outcomes(bpjs_sim, "ok"))
    # 20 requests at 50/s would take 0.4 s at full rate; the ramp starts at 5/s.
    assert times[-1] - times[0] > 0.4
    await tenang.notifier.check()
    await tenang.notifier.flush()
    assert http_receiver.posts == []  # an announced outage pages nobody
    assert await api(http, "GET", base) == {"items": []}


async def test_maintenance_api_validates_and_needs_the_token(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang: Tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    base = f"{tenang.admin_url}/api/v1/maintenance"
    async with http.get(base) as resp:
        assert resp.status == 401
    async with http.post(base, json={"upstream": "antrean", "reason": "x"}) as resp:
        assert resp.status == 401
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"upstream": "nope", "reason": "x"}, "unknown upstream"),
        ({"upstream": "antrean"}, "reason"),
        ({"upstream": "antrean", "reason": "x", "starts_at": "2030-01-01T22:00"}, "offset"),
        ({"upstream": "antrean", "reason": "x", "ends_at": "soon"}, "ISO 8601"),
        ({"upstream": "antrean", "reason": "x", "ends_at": 1e10, "duration_s": 60}, "not both"),
        ({"upstream": "antrean", "reason": "x", "duration_s": -5}, "duration_s"),
        ({"upstream": "antrean", "reason": "x", "starts_at": "2000-01-01T00:00:00Z",
          "ends_at": "2001-01-01T00:00:00Z"}, "over"),
        ({"upstream": "antrean", "reason": "x", "colour": "red"}, "colour"),
    ]
    for body, words in refusals:
        doc = await api(http, "POST", base, body, 400)
        assert words in doc["error"], (body, doc)
    later = await api(http, "POST", base, {
        "upstream": "antrean", "reason": "BPJS announced downtime",
        "starts_at": "2099-03-01T22:00:00+07:00", "duration_s": 7200}, 201)
    assert later["starts_at"] == "2099-03-01T15:00:00.000Z"
    assert later["ends_at"] == "2099-03-01T17:00:00.000Z"
    assert not later["active"]
    assert not tenang.breakers["antrean"].forced
    assert [w["id"] for w in (await api(http, "GET", base))["items"]] == [later["id"]]
    assert (await api(http, "GET", f"{base}?upstream=vclaim"))["items"] == []
    await api(http, "POST", f"{base}/999/cancel", status=404)
    await api(http, "POST", f"{base}/abc/cancel", status=404)
    await api(http, "POST", f"{base}/{later['id']}/cancel")
    assert (await api(http, "GET", base))["items"] == []
    [past] = (await api(http, "GET", f"{base}?include_past=true"))["items"]
    assert past["cancelled_at"] is not None
    # Changes through the API are audited like those made in the UI: who, when, what.
    target = f"maintenance:{later['id']}"
    entries = [(e.actor, e.action, e.detail)
               for e in await tenang.backend.audit.audit_entries(target=target)]
    assert entries == [
        ("api-token", "maintenance_cancel", "antrean"),
        ("api-token", "maintenance_schedule",
         "antrean from 2099-03-01 22:00 WIB to 2099-03-02 00:00 WIB: BPJS announced "
         "downtime")]
