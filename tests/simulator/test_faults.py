"""One-shot faults queued through /_sim/faults: each action, ``times``, the method filter,
and the ambiguous outcome (applied, then the connection dropped)."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.conftest import wait_until

from .conftest import Simrs, t_sep

INSERT = "SEP/2.0/insert"


async def test_reset_before_apply_drops_and_applies_nothing(simrs: Simrs) -> None:
    await simrs.sim.fault(INSERT, "reset-before-apply")
    with pytest.raises(aiohttp.ClientConnectionError):
        await simrs.post("vclaim", INSERT, t_sep())
    assert (await simrs.sim.snapshot())["seps"] == []
    assert (await simrs.post("vclaim", INSERT, t_sep())).code == "200"     # used up
    first, second = await simrs.sim.log()
    assert (first["outcome"], first["fault"], first["applied"]) == (
        "fault", "reset-before-apply", False)
    assert (second["outcome"], second["fault"]) == ("ok", None)


async def test_reset_after_apply_creates_the_sep_then_drops(simrs: Simrs) -> None:
    await simrs.sim.fault(INSERT, "reset-after-apply")
    with pytest.raises(aiohttp.ClientConnectionError):
        await simrs.post("vclaim", INSERT, t_sep())
    [sep] = (await simrs.sim.snapshot())["seps"]
    [entry] = await simrs.sim.log()
    assert (entry["outcome"], entry["answer"], entry["applied"]) == ("fault", "reset", True)
    # what a proxy does next: reconcile, and a blind retry is refused naming the SEP
    last = await simrs.get("vclaim", "Rujukan/lastsep/norujukan/0138U0200326P000123")
    assert last.plain()["noSep"] == sep["no_sep"]
    retry = await simrs.post("vclaim", INSERT, t_sep())
    assert retry.code == "201" and retry.message.endswith(sep["no_sep"])


async def test_delay_then_answer_applies_first_and_answers_late(simrs: Simrs) -> None:
    await simrs.sim.fault(INSERT, "delay-then-answer", delay_ms=2000)
    with pytest.raises(TimeoutError):
        await simrs.post("vclaim", INSERT, t_sep(), timeout_s=0.3)
    await wait_until(lambda: len(simrs.sim.state.records.seps) == 1, what="the SEP")
    await simrs.sim.fault(INSERT, "delay-then-answer", delay_ms=200)
    started = time.monotonic()
    reply = await simrs.post("vclaim", INSERT, t_sep(poli="MAT"))
    assert reply.code == "200" and time.monotonic() - started >= 0.2
    assert [e["fault"] for e in await simrs.sim.log()] == ["delay-then-answer"] * 2


async def test_delay_before_apply_lands_after_the_client_gave_up(simrs: Simrs) -> None:
    await simrs.sim.fault(INSERT, "delay-before-apply", delay_ms=300)
    with pytest.raises(TimeoutError):
        await simrs.post("vclaim", INSERT, t_sep(), timeout_s=0.1)
    assert simrs.sim.state.records.seps == {}
    await wait_until(lambda: len(simrs.sim.state.records.seps) == 1, what="the late SEP")


@pytest.mark.parametrize(("action", "status", "marker"), [
    ("html-500", 500, "Runtime Error"),
    ("html-503", 503, "503 Service Temporarily Unavailable"),
])
async def test_html_faults(simrs: Simrs, action: str, status: int, marker: str) -> None:
    await simrs.sim.fault("antrean/add", action)
    reply = await simrs.post("antrean", "antrean/add", {"kodebooking": "X"})
    assert reply.status == status and marker in reply.text and reply.doc is None
    [entry] = await simrs.sim.log()
    assert (entry["outcome"], entry["fault"], entry["status"]) == ("fault", action, status)


async def test_reject_fault_refuses_in_the_envelope_and_applies_nothing(
        simrs: Simrs) -> None:
    await simrs.sim.fault(INSERT, "reject")
    refused = await simrs.post("vclaim", INSERT, t_sep())
    assert (refused.status, refused.code) == (200, "201")    # a business refusal
    assert simrs.sim.state.records.seps == {}
    assert (await simrs.post("vclaim", INSERT, t_sep())).code == "200"     # used up
    first, _ = await simrs.sim.log()
    assert (first["outcome"], first["fault"], first["applied"]) == ("fault", "reject", False)


async def test_timeout_fault_holds_and_applies_nothing(simrs: Simrs) -> None:
    await simrs.sim.set_mode(timeout_hang_s=30)
    await simrs.sim.fault(INSERT, "timeout")
    with pytest.raises(TimeoutError):
        await simrs.post("vclaim", INSERT, t_sep(), timeout_s=0.2)
    assert simrs.sim.state.records.seps == {}


async def test_times_and_method_filter(simrs: Simrs) -> None:
    await simrs.sim.fault("ref/poli", "html-503", times=2, method="GET")
    statuses = [(await simrs.get("antrean", "REF/POLI")).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    await simrs.sim.fault("SEP", "html-500", method="DELETE")
    assert (await simrs.post("vclaim", INSERT, t_sep())).status == 200   # POST: not matched
    assert len(simrs.sim.state.faults) == 1
    async with simrs.http.get(f"{simrs.sim.url}/_sim/faults") as resp:
        [queued] = await resp.json()
    assert queued["method"] == "DELETE" and queued["times"] == 1


async def test_faults_match_only_authenticated_requests(simrs: Simrs) -> None:
    await simrs.sim.fault(INSERT, "html-500")
    refused = await simrs.post("vclaim", INSERT, t_sep(), headers={})
    assert refused.status == 401
    assert len(simrs.sim.state.faults) == 1


async def test_bad_fault_is_refused(simrs: Simrs) -> None:
    with pytest.raises(ValueError, match="action"):
        await simrs.sim.fault(INSERT, "explode")
    with pytest.raises(ValueError, match="times"):
        await simrs.sim.fault(INSERT, "html-500", times=0)
