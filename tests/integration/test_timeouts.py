"""Configured upstream timeouts fire when configured, not at the next whole second
(aiohttp rounds deadlines of 5 s or more up unless told not to), over real HTTP to a
BPJS simulator that answers too late."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import Simrs, booking, bpjs_config

# What a user may see beyond the configured 5 s: scheduling on a busy machine, not the
# up-to-1 s rounding.
MARGIN_S = 0.3


async def test_a_queued_attempt_times_out_at_timeout_s(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    await bpjs_sim.fault("antrean/add", "delay-then-answer", delay_ms=9000)
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, timeout_s=5.0,
                                            retry={"max_attempts": 1}))
    simrs = Simrs(http, bpjs_sim, tenang)
    loop = asyncio.get_running_loop()
    started = loop.time()
    request_id = await simrs.send("POST", "/antreanrs/antrean/add", booking("KB-T5"))
    doc = await simrs.wait_status(request_id, "dead")
    waited = loop.time() - started
    attempt = doc["attempts"][0]
    assert attempt["error"] == "timed out waiting for upstream"
    assert 5000 <= attempt["duration_ms"] < (5 + MARGIN_S) * 1000
    assert waited < 5 + MARGIN_S + 1  # the loop saw the same: no whole-second overshoot


async def test_a_passthrough_read_gives_up_at_timeout_s(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    await bpjs_sim.fault("Peserta", "delay-then-answer", delay_ms=9000)
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, "vclaim", timeout_s=5.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(tenang.gateway_url + "/vclaim-rest/Peserta/nokartu/0001112223331/"
                        "tglSEP/2026-01-01",
                        headers=bpjs_sim.signed_headers("vclaim")) as resp:
        await resp.read()
        waited = loop.time() - started
        assert resp.headers.get("X-Tenang-Fallback")
    assert 5 <= waited < 5 + MARGIN_S
