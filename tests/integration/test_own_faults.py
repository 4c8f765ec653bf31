"""One request's own refusal never stalls its upstream: requests BPJS refuses for their
own credentials (no user_key, stored before intake refused such writes; or a user_key
BPJS refuses, e.g. another service's) end failed after a few attempts and never open the
breaker, while the good bookings and reads beside them go through at once. Over real
HTTP against the BPJS simulator, which answers 401 "user_key tidak ditemukan" / "user_key
tidak valid"."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.service_day import end_of_service_day
from proxy.bpjs.simulator import SimConfig
from proxy.bpjs.simulator.harness import RunningSimulator, start_simulator
from proxy.ids import next_request_id
from proxy.store.records import NewRequest
from tests.bpjs_support import SECRET_ENV, Simrs, booking, bpjs_config
from tests.conftest import wait_until
from tests.integration.metrics_scrape import scrape, v
from tests.store_support import enqueue

ADD = "/antreanrs/antrean/add"
PESERTA = "/vclaim-rest/Peserta/nokartu/0001112223360/tglSEP/2026-01-01"
GOOD, POISONED = 75, 5
OTHER_SERVICES_KEY = "vclaim-user-key"  # what a misconfigured SIMRS module sends


@pytest.fixture
async def picky_sim() -> AsyncIterator[RunningSimulator]:
    """The simulator refusing one user_key (as BPJS refuses another service's)."""
    from tests.conftest import SIM_CONS_ID, SIM_SECRET
    sim = await start_simulator(SimConfig(cons_id=SIM_CONS_ID, secret=SIM_SECRET,
                                          refused_user_keys=(OTHER_SERVICES_KEY,)))
    yield sim
    await sim.close()


async def _store_without_user_key(simrs: Simrs, kode: str) -> str:
    """A write as stored before intake refused one without a user_key (an upgrade)."""
    now = time.time()
    rid = next_request_id(now)
    await enqueue(simrs.tenang.backend.intake, NewRequest(
        id=rid, upstream="antrean", method="POST", path=ADD, query="",
        headers=(("Content-Type", "application/json"),),
        body=json.dumps(booking(kode)).encode(), received_at=now, endpoint="antrean.add",
        expires_at=end_of_service_day(now)))
    return rid


async def test_requests_refused_for_their_own_user_key_do_not_starve_the_others(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    # fail_max 3: without the fix, the 5 refusals open the breaker, and then come back as
    # its half-open probes and re-open it.
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, breaker={"fail_max": 3}))
    simrs = Simrs(http, bpjs_sim, tenang)
    poisoned = [await _store_without_user_key(simrs, f"KB-P{i}") for i in range(POISONED)]
    assert tenang.relay is not None
    tenang.relay.wake("antrean")
    good = await asyncio.gather(*(simrs.send("POST", ADD, booking(f"KB-G{i:02d}"))
                                  for i in range(GOOD)))

    async def settled() -> bool:
        docs = [await simrs.request(rid) for rid in good + poisoned]
        return all(d["status"] in ("succeeded", "failed", "dead") for d in docs)

    await wait_until(settled, timeout_s=30, what="every booking to settle")
    seen = await scrape(http, tenang)
    assert v(seen, "tenang_circuit_transitions_total", upstream="antrean", to="open") == 0
    for rid in good:
        doc = await simrs.request(rid)
        assert (doc["status"], doc["attempt_count"]) == ("succeeded", 1)
    limit = tenang.config.upstreams[0].retry.max_own_refusals
    for rid in poisoned:
        doc = await simrs.request(rid)
        assert (doc["status"], doc["attempt_count"]) == ("failed", limit), doc["reason"]
        assert "user_key tidak ditemukan" in doc["reason"]
        assert "own refusal" in doc["reason"]
    refused = await bpjs_sim.log(ADD.removeprefix("/antreanrs/"), outcome="bad-user-key")
    assert len(refused) == POISONED * limit  # a few tries each, not every attempt


async def opened(http: aiohttp.ClientSession, tenang: Any, upstream: str) -> float:
    seen = await scrape(http, tenang)
    return v(seen, "tenang_circuit_transitions_total", upstream=upstream, to="open")


async def test_bookings_sent_with_a_refused_user_key_fail_and_the_rest_get_through(
        tmp_path: Path, picky_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, picky_sim, breaker={"fail_max": 3}))
    simrs = Simrs(http, picky_sim, tenang)

    async def send(kode: str, user_key: str | None = None) -> str:
        headers = picky_sim.signed_headers("antrean", method="POST", user_key=user_key) \
            if user_key else picky_sim.signed_headers("antrean", method="POST")
        async with http.post(tenang.gateway_url + ADD, data=json.dumps(booking(kode)),
                             headers=headers) as resp:
            assert resp.status == 202, await resp.text()
            return resp.headers["X-Tenang-Request-Id"]

    poisoned = [await send(f"KB-W{i}", OTHER_SERVICES_KEY) for i in range(POISONED)]
    good = await asyncio.gather(*(send(f"KB-R{i:02d}") for i in range(GOOD)))
    limit = tenang.config.upstreams[0].retry.max_own_refusals
    for rid in poisoned:
        doc = await simrs.wait_status(rid, "failed", "dead")
        assert (doc["status"], doc["attempt_count"]) == ("failed", limit), doc["reason"]
        assert "user_key tidak valid" in doc["reason"]
    for rid in good:
        doc = await simrs.wait_status(rid, "succeeded")
        assert doc["attempt_count"] == 1
    assert await opened(http, tenang, "antrean") == 0


async def test_passthrough_reads_with_a_refused_user_key_leave_the_circuit_closed(
        tmp_path: Path, picky_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, picky_sim, "vclaim",
                                            breaker={"fail_max": 3}))
    wrong = picky_sim.signed_headers("vclaim", user_key=OTHER_SERVICES_KEY)
    for _ in range(POISONED):
        async with http.get(tenang.gateway_url + PESERTA, headers=wrong) as resp:
            doc = await resp.json(content_type=None)
            # BPJS's own refusal, relayed to the caller whose key it is
            assert (resp.status, "X-Tenang-Fallback" in resp.headers) == (401, False)
            assert doc["metaData"]["message"] == "Unauthorized! user_key tidak valid"
    async with http.get(tenang.gateway_url + PESERTA,
                        headers=picky_sim.signed_headers("vclaim")) as resp:
        assert (resp.status, "X-Tenang-Fallback" in resp.headers) == (200, False)
    assert await opened(http, tenang, "vclaim") == 0


async def test_a_passthrough_read_without_user_key_gets_the_configured_one(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(
        tmp_path, bpjs_sim, "vclaim", user_key_env="TENANG_TEST_USER_KEY",
        env={SECRET_ENV: bpjs_sim.secret, "TENANG_TEST_USER_KEY": "hospital-vclaim-key"}))
    headers = bpjs_sim.signed_headers("vclaim")
    del headers["user_key"]
    async with http.get(tenang.gateway_url + PESERTA, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    [read] = await bpjs_sim.log("Peserta")
    assert read["outcome"] == "ok"
