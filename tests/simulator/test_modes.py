"""Modes switched at run time: down (HTML 503, resets, timeouts), slow, flaky; the
control API stays available in every mode."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from proxy.bpjs.simulator import SimConfig
from proxy.bpjs.simulator.harness import start_simulator
from tests.conftest import SIM_CONS_ID, SIM_SECRET, wait_until

from .conftest import Simrs, t_sep

FAILED = (aiohttp.ClientError, TimeoutError)


async def test_down_html_answers_503_page_and_applies_nothing(simrs: Simrs) -> None:
    await simrs.sim.set_mode("down", down_style="html")
    reply = await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    assert reply.status == 503 and reply.doc is None
    assert "503 Service Temporarily Unavailable" in reply.text
    [entry] = await simrs.sim.log()
    assert (entry["outcome"], entry["answer"], entry["status"]) == ("down", "html-503", 503)
    assert entry["body"] == t_sep() and entry["applied"] is False
    assert (await simrs.sim.snapshot())["seps"] == []


async def test_down_reset_drops_the_connection(simrs: Simrs) -> None:
    await simrs.sim.set_mode("down", down_style="reset")
    with pytest.raises(aiohttp.ClientConnectionError):
        await simrs.post("antrean", "antrean/add", {"kodebooking": "X"})
    [entry] = await simrs.sim.log()
    assert (entry["outcome"], entry["answer"], entry["status"]) == ("down", "reset", None)


async def test_down_timeout_holds_the_request_past_the_client_timeout(simrs: Simrs) -> None:
    await simrs.sim.set_mode("down", down_style="timeout", timeout_hang_s=30)
    with pytest.raises(TimeoutError):
        await simrs.get("antrean", "ref/poli", timeout_s=0.2)
    [entry] = await simrs.sim.log()
    assert (entry["outcome"], entry["answer"]) == ("down", "timeout")


async def test_held_requests_end_when_the_simulator_stops() -> None:
    sim = await start_simulator(SimConfig(cons_id=SIM_CONS_ID, secret=SIM_SECRET,
                                          mode="down", down_style="timeout",
                                          timeout_hang_s=600))
    async with aiohttp.ClientSession() as http:
        pending = asyncio.ensure_future(http.get(f"{sim.url}/antreanrs/ref/poli"))
        await wait_until(lambda: len(sim.state.log) == 1, what="the request to arrive")
        # close() must not wait out the 600 s hang
        await asyncio.wait_for(sim.close(), timeout=10)
        with pytest.raises(aiohttp.ClientError):
            resp = await pending
            resp.raise_for_status()


async def test_down_mixed_is_deterministic_from_the_seed(simrs: Simrs) -> None:
    async def run() -> list[str | None]:
        await simrs.sim.reset()
        await simrs.sim.set_mode("down")                     # default style: mixed
        for _ in range(12):
            with contextlib.suppress(*FAILED):
                await simrs.get("antrean", "ref/poli")
        return [e["answer"] for e in await simrs.sim.log()]

    first, second = await run(), await run()
    assert first == second
    assert {"html-503", "html-502", "reset"} <= set(first)


async def test_control_api_works_while_down_and_up_recovers(simrs: Simrs) -> None:
    await simrs.sim.set_mode("down", down_style="html")
    assert (await simrs.get("antrean", "ref/poli")).status == 503
    assert (await simrs.sim.snapshot())["settings"]["mode"] == "down"
    assert len(await simrs.sim.log(outcome="down")) == 1
    await simrs.sim.set_mode("up")
    assert (await simrs.get("antrean", "ref/poli")).code == 1


async def test_slow_mode_answers_after_the_latency(simrs: Simrs) -> None:
    await simrs.sim.set_mode("slow", slow_latency_ms=300)
    started = time.monotonic()
    reply = await simrs.get("antrean", "ref/poli")
    assert reply.code == 1 and time.monotonic() - started >= 0.3
    with pytest.raises(TimeoutError):
        await simrs.get("antrean", "ref/poli", timeout_s=0.1)


async def test_slow_with_latency_ms_sets_the_slow_wait_only(simrs: Simrs) -> None:
    settings = await simrs.sim.set_mode("slow", latency_ms=250)
    assert (settings["slow_latency_ms"], settings["latency_ms"]) == (250.0, 0.0)
    started = time.monotonic()
    assert (await simrs.get("antrean", "ref/poli")).code == 1
    assert time.monotonic() - started >= 0.25
    assert (await simrs.sim.set_mode("up"))["latency_ms"] == 0.0


async def test_latency_applies_in_up_mode(simrs: Simrs) -> None:
    await simrs.sim.set_mode(latency_ms=200)
    started = time.monotonic()
    assert (await simrs.get("antrean", "ref/poli")).code == 1
    assert time.monotonic() - started >= 0.2


async def test_state_counts_the_most_requests_answered_at_once(simrs: Simrs) -> None:
    await simrs.sim.set_mode(latency_ms=200)
    await asyncio.gather(*(simrs.get("antrean", "ref/poli") for _ in range(3)))
    await simrs.get("antrean", "ref/poli")
    assert (await simrs.sim.snapshot())["concurrency"] == {"now": 0, "most": 3}
    await simrs.sim.reset()
    assert (await simrs.sim.snapshot())["concurrency"] == {"now": 0, "most": 0}


async def test_flaky_fails_the_error_rate_share_before_applying(simrs: Simrs) -> None:
    await simrs.sim.set_mode("flaky", error_rate=1.0, flaky_style="html")
    reply = await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    assert reply.status in (500, 503) and reply.doc is None
    assert (await simrs.sim.snapshot())["seps"] == []
    await simrs.sim.set_mode(error_rate=0.5, flaky_style="mixed")
    for _ in range(20):
        with contextlib.suppress(*FAILED):
            await simrs.get("antrean", "ref/poli")
    failures = await simrs.sim.log(path_contains="ref/poli", outcome="flaky")
    assert 0 < len(failures) < 20
    assert {e["answer"] for e in failures} <= {"html-500", "html-503", "reset"}
    await simrs.sim.set_mode(error_rate=0.0)
    assert (await simrs.post("vclaim", "SEP/2.0/insert", t_sep())).code == "200"
