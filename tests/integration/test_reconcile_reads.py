"""An unanswered SEP insert is settled by reading BPJS's service history, and a read that
gets no usable answer (5xx, HTML, reset, timeout) is read again with a persisted backoff,
never answered by a blind resend and never parked `held` while BPJS can still tell. Over
real HTTP against the BPJS simulator and its one-shot faults."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.service_day import end_of_service_day
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.ids import next_request_id
from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.records import AttemptRecord, NewRequest
from proxy.store.sqlite import sqlite_backend
from tests.bpjs_support import bpjs_config
from tests.conftest import FakeClock, admin_headers, wait_until
from tests.integration.metrics_scrape import scrape, v
from tests.integration.test_modes import SEP_INSERT, Caller, t_sep, vclaim
from tests.signing import bpjs_headers
from tests.store_support import enqueue

HISTORY = "HistoriPelayanan"
# What each read failure looks like on the wire: an HTML 500 and 503, a reset, a hang
# past timeout_s (2 s in the test config), and how many reads in a row meet it. aiohttp
# itself repeats a GET once when a reused connection is reset, so a reset comes twice.
READ_FAILURES = (("html-500", 1), ("html-503", 1), ("reset-before-apply", 2), ("timeout", 1))


async def _inserts(sim: RunningSimulator) -> list[str]:
    return [e["outcome"] for e in await sim.log("SEP/2.0/insert")]


@pytest.mark.parametrize(("failure", "times"), READ_FAILURES)
async def test_a_history_read_that_fails_once_is_read_again_and_finds_the_sep(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, failure: str, times: int) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    await bpjs_sim.fault("SEP/2.0/insert", "reset-after-apply")  # made, but no answer
    await bpjs_sim.fault(HISTORY, failure, times=times)
    _, headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223340"))
    stored = await simrs.wait_status(headers["X-Tenang-Request-Id"], "succeeded")
    assert "found by reconciliation" in stored["reason"]
    sep = json.loads(stored["last_response"])["response"]["sep"]["noSep"]
    assert sep in json.dumps((await bpjs_sim.snapshot())["seps"])
    assert len(await _inserts(bpjs_sim)) == 1  # never sent a second time
    assert len(await bpjs_sim.log(HISTORY)) == times + 1
    seen = await scrape(http, simrs.tenang)
    reads = {r: v(seen, "tenang_reconciliation_reads_total", upstream="vclaim", result=r)
             for r in ("unreachable", "found")}
    assert reads == {"unreachable": 1, "found": 1}  # aiohttp's own repeat is not Tenang's


async def test_a_history_read_that_fails_once_then_finds_no_sep_sends_it_again(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    await bpjs_sim.fault("SEP/2.0/insert", "reset-before-apply")  # lost: nothing made
    await bpjs_sim.fault(HISTORY, "html-503")
    _, headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223341"))
    stored = await simrs.wait_status(headers["X-Tenang-Request-Id"], "succeeded")
    assert await _inserts(bpjs_sim) == ["fault", "ok"]  # sent again only once it knew
    # The second read is answered "201 ... tidak ditemukan": no SEP for the card that day.
    assert [e["outcome"] for e in await bpjs_sim.log(HISTORY)] == ["fault", "rejected"]
    assert stored["attempt_count"] == 2
    assert len((await bpjs_sim.snapshot())["seps"]) == 1


async def test_history_reads_failing_until_the_day_ends_leave_the_insert_held_and_a_retry_reads(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    clock = FakeClock(time.time())
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, "vclaim"), clock=clock)
    simrs = Caller(http, bpjs_sim, tenang, "vclaim")
    await bpjs_sim.fault("SEP/2.0/insert", "reset-after-apply")
    await bpjs_sim.fault(HISTORY, "html-503", times=3)  # every read until midnight
    _, headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223342"))
    request_id = headers["X-Tenang-Request-Id"]

    async def reads(n: int) -> bool:
        return len(await bpjs_sim.log(HISTORY)) >= n

    for n in (1, 2, 3):  # each read waits for its backoff (fake time), then reads again
        await wait_until(lambda n=n: reads(n), what=f"history read {n}")  # type: ignore[misc]
        doc = await simrs.status_of(request_id)
        assert doc["status"] in ("pending", "in_flight")
        clock.advance(1.0)
    stored = await tenang.backend.log.get(request_id)
    assert stored is not None and stored.expires_at is not None
    clock.now = stored.expires_at + 1  # midnight in Jakarta: the service day is over
    doc = await simrs.wait_status(request_id, "held")
    assert "deadline passed" in doc["reason"] and "history could be read" in doc["reason"]
    assert len(await _inserts(bpjs_sim)) == 1
    assert doc["attempt_count"] == 1  # reads are not sends
    assert len(await bpjs_sim.log(HISTORY)) == 3  # and none was made after midnight
    # A person retries it the next morning: BPJS answers again, and the retry reads the
    # history before it would send, so the SEP BPJS made is found, not made twice.
    async with http.post(f"{tenang.admin_url}/api/v1/requests/{request_id}/retry",
                         headers=admin_headers()) as resp:
        assert resp.status == 200, await resp.text()
    doc = await simrs.wait_status(request_id, "succeeded")
    assert "found by reconciliation" in doc["reason"]
    assert len(await _inserts(bpjs_sim)) == 1


async def _left_by_a_killed_process(store: Backend, body: bytes, *, mid_read: bool) -> str:
    """The row kill -9 leaves: in flight, leased to a process that is gone, its lease
    run out; ``mid_read``: killed while reading the history after a send with no answer,
    else killed mid-send."""
    now = time.time()
    rid = next_request_id(now - 60)
    headers = tuple((k, v) for k, v in bpjs_headers().items() if k == "user_key")
    await enqueue(store.intake, NewRequest(
        id=rid, upstream="vclaim", method="POST", path=SEP_INSERT, query="", headers=headers,
        body=body, received_at=now - 60, endpoint="vclaim.sep.insert",
        expires_at=end_of_service_day(now), lease_owner="killed", lease_expires_at=now - 30))
    if mid_read:
        await store.queue.complete_attempt(rid, "killed", AttemptRecord(
            1, now - 60, 2.0, Verdict.TRANSIENT, None, "timed out waiting for upstream", None),
            Transition(Status.PENDING, "reading", next_attempt_at=now - 50,
                       reconcile_reads=1), now - 50)
        await store.queue.claim_due("vclaim", now - 40, 1, "killed", now - 30)
    return rid


@pytest.mark.parametrize("mid_read", [False, True], ids=["mid-send", "mid-read"])
@pytest.mark.parametrize("made", [True, False], ids=["sep-made", "sep-not-made"])
async def test_after_kill_9_a_sep_insert_is_read_back_never_sent_blindly(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, mid_read: bool, made: bool) -> None:
    body = t_sep("0001112223343")
    if made:  # the killed process's send reached BPJS, which made the SEP
        headers = bpjs_sim.signed_headers("vclaim", method="POST")
        async with http.post(f"{bpjs_sim.url}{SEP_INSERT}", json=body, headers=headers) as r:
            assert r.status == 200
    config = bpjs_config(tmp_path, bpjs_sim, "vclaim")
    store = sqlite_backend(config.store.sqlite_path)
    await store.open()
    rid = await _left_by_a_killed_process(store, json.dumps(body).encode(), mid_read=mid_read)
    await store.close()
    await bpjs_sim.fault(HISTORY, "html-503")  # and the first read after the restart fails
    simrs = Caller(http, bpjs_sim, await start_tenang(config), "vclaim")
    doc = await simrs.wait_status(rid, "succeeded")
    sends = len(await _inserts(bpjs_sim))
    assert sends == 1  # made: never sent again; not made: sent once, after reading
    assert len((await bpjs_sim.snapshot())["seps"]) == 1
    assert ("found by reconciliation" in doc["reason"]) is made
    assert len(await bpjs_sim.log(HISTORY)) == 2
