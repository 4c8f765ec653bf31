"""BPJS protocol awareness over real HTTP against the BPJS simulator: re-signing of late
replays, decrypted results readable by ops, no secret or signature at rest, Antrean
task order with held dependants, duplicates and business rejections."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import (
    Simrs,
    booking,
    bpjs_config,
    database_bytes,
    today,
    waktu,
)
from tests.conftest import admin_headers, wait_until


@pytest.fixture
async def antrean(tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
                  http: aiohttp.ClientSession) -> Simrs:
    return Simrs(http, bpjs_sim, await start_tenang(bpjs_config(tmp_path, bpjs_sim)))


# --- re-signing -----------------------------------------------------------------------------


@pytest.mark.parametrize("re_sign", [True, False], ids=["re-signed", "original-headers"])
async def test_a_replay_minutes_after_the_simrs_signed_is_accepted_because_re_signed(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, re_sign: bool) -> None:
    await bpjs_sim.set_mode("down", max_skew_s=1)
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, re_sign=re_sign))
    simrs = Simrs(http, bpjs_sim, tenang)
    # The SIMRS signed its call 130 s ago: BPJS (skew 1 s) refuses that header set now.
    request_id = await simrs.send("POST", "/antreanrs/antrean/add", booking("KB-RESIGN"),
                                  signed_at=time.time() - 130)

    async def tried_during_outage() -> bool:
        return bool(await bpjs_sim.log("antrean/add", outcome="down"))

    await wait_until(tried_during_outage, what="a delivery attempt during the outage")
    await bpjs_sim.set_mode("up")
    if re_sign:
        await simrs.wait_status(request_id, "succeeded")
        assert len(await bpjs_sim.log("antrean/add", outcome="ok")) == 1
    else:
        async def refused() -> bool:
            log = await bpjs_sim.log("antrean/add")
            return any(e["outcome"] in ("bad-signature", "stale-timestamp") for e in log)

        await wait_until(refused, what="the simulator to refuse the stale headers")
        assert await bpjs_sim.log("antrean/add", outcome="ok") == []
        assert (await simrs.request(request_id))["status"] != "succeeded"


# --- results readable, credentials not at rest ----------------------------------------------


async def test_queued_antrean_write_result_is_readable_and_no_credential_is_stored(
        tmp_path: Path, antrean: Simrs, bpjs_sim: RunningSimulator) -> None:
    add_id = await antrean.send("POST", "/antreanrs/antrean/add", booking("KB-READ"))
    signature_sent = antrean.last_headers["X-signature"]
    task_id = await antrean.send("POST", "/antreanrs/antrean/updatewaktu",
                                 {"kodebooking": "KB-READ", "taskid": 3, "waktu": waktu(5)})
    for request_id in (add_id, task_id):
        doc = await antrean.wait_status(request_id, "succeeded")
        result = json.loads(doc["last_response"])
        assert result["metadata"]["code"] == 200
    stored = database_bytes(tmp_path)
    assert b"KB-READ" in stored  # the file under test really holds the requests
    assert bpjs_sim.secret.encode() not in stored
    assert signature_sent.encode() not in stored
    assert b"X-signature" not in stored and b"x-signature" not in stored.lower()


async def test_an_encrypted_answer_is_stored_decrypted_with_its_attempts_timestamp(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    # ref/poli is a read; a route queues it here so its stored answer can be inspected.
    cfg = bpjs_config(tmp_path, bpjs_sim, routes=[{"match": "GET ref/poli", "mode": "queue"}])
    simrs = Simrs(http, bpjs_sim, await start_tenang(cfg))
    request_id = await simrs.send("GET", "/antreanrs/ref/poli")
    doc = await simrs.wait_status(request_id, "succeeded")
    result = json.loads(doc["last_response"])
    assert result["metadata"]["code"] in (1, 200)
    sent = await bpjs_sim.log("ref/poli", outcome="ok")
    assert len(sent) == 1
    # What BPJS itself says, asked directly and decrypted with our own timestamp.
    headers = bpjs_sim.signed_headers("antrean")
    async with http.get(f"{bpjs_sim.url}/antreanrs/ref/poli", headers=headers) as resp:
        direct = bpjs_sim.decrypt(await resp.json(content_type=None), headers)
    assert direct and result["response"] == direct


async def test_queued_sep_update_result_is_plain_text_in_the_admin_api(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    sep = await create_sep(http, bpjs_sim)
    simrs = Simrs(http, bpjs_sim, await start_tenang(bpjs_config(tmp_path, bpjs_sim,
                                                                 "vclaim")), "vclaim")
    body = {"request": {"t_sep": {"noSep": sep, "klsRawat": {"klsRawatHak": "2"},
                                  "catatan": "ubah", "user": "Coba Ws"}}}
    request_id = await simrs.send("PUT", "/vclaim-rest/SEP/2.0/update", body)
    doc = await simrs.wait_status(request_id, "succeeded")
    result = json.loads(doc["last_response"])
    assert result["metaData"]["code"] == "200"
    assert result["response"] == sep


async def create_sep(http: aiohttp.ClientSession, sim: RunningSimulator) -> str:
    """A SEP made directly at the simulator (as if issued earlier)."""
    body = {"request": {"t_sep": {
        "noKartu": "0009990001112", "tglSep": today(), "ppkPelayanan": "0301R001",
        "jnsPelayanan": "2", "klsRawat": {"klsRawatHak": "2"}, "noMR": "1",
        "rujukan": {"asalRujukan": "1", "tglRujukan": today(),
                    "noRujukan": "0138U0200326P000999", "ppkRujukan": "0138U020"},
        "catatan": "", "diagAwal": "I10", "poli": {"tujuan": "INT", "eksekutif": "0"},
        "user": "Coba Ws"}}}
    headers = sim.signed_headers("vclaim", method="POST")
    async with http.post(f"{sim.url}/vclaim-rest/SEP/2.0/insert", data=json.dumps(body),
                         headers=headers) as resp:
        doc = await resp.json(content_type=None)
    sep: str = sim.decrypt(doc, headers)["sep"]["noSep"]
    return sep


# --- Antrean order, duplicates, rejections ----------------------------------------------


async def test_tasks_sent_while_bpjs_is_down_arrive_in_order_after_recovery(
        antrean: Simrs, bpjs_sim: RunningSimulator) -> None:
    await bpjs_sim.set_mode("down")
    ids = [await antrean.send("POST", "/antreanrs/antrean/add", booking("KB-ORDER"))]
    for n, task in enumerate((3, 4, 5)):
        ids.append(await antrean.send("POST", "/antreanrs/antrean/updatewaktu", {
            "kodebooking": "KB-ORDER", "taskid": task, "waktu": waktu(10 * (n + 1))}))
    await wait_until(lambda: _has_down(bpjs_sim), what="attempts during the outage")
    await bpjs_sim.set_mode("up")
    for request_id in ids:
        await antrean.wait_status(request_id, "succeeded")
    applied = await bpjs_sim.log("antrean/updatewaktu", outcome="ok")
    assert [e["body"]["taskid"] for e in applied] == [3, 4, 5]
    assert await bpjs_sim.log(outcome="ordering") == []
    [held_by_bpjs] = [b for b in (await bpjs_sim.snapshot())["bookings"]
                      if b["kodebooking"] == "KB-ORDER"]
    assert held_by_bpjs["task_ids"] == [3, 4, 5]

    # Task 6 reaches BPJS directly first (say the SIMRS sent it around Tenang): Tenang's
    # delivery then gets "208 TaskId=6 sudah ada", which means already applied.
    task6 = {"kodebooking": "KB-ORDER", "taskid": 6, "waktu": waktu(50)}
    async with antrean.http.post(f"{bpjs_sim.url}/antreanrs/antrean/updatewaktu",
                                 data=json.dumps(task6),
                                 headers=bpjs_sim.signed_headers("antrean", method="POST")):
        pass
    again = await antrean.send("POST", "/antreanrs/antrean/updatewaktu", task6)
    doc = await antrean.wait_status(again, "succeeded")
    assert doc["attempts"][-1]["outcome"] == "duplicate"
    assert json.loads(doc["last_response"])["metadata"]["code"] == 208


async def _has_down(sim: RunningSimulator) -> bool:
    return bool(await sim.log(outcome="down"))


async def test_a_failed_task_holds_the_later_ones_until_an_operator_acts(
        antrean: Simrs, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    # The booking is rejected for good, so its task must not be sent after it: held.
    first = await antrean.send("POST", "/antreanrs/antrean/add",
                               booking("KB-HOLD", nomorreferensi="INVALID-REF"))
    later = await antrean.send("POST", "/antreanrs/antrean/updatewaktu", {
        "kodebooking": "KB-HOLD", "taskid": 3, "waktu": waktu(5)})
    await antrean.wait_status(first, "failed")
    held = await antrean.wait_status(later, "held")
    assert first in held["reason"] and "failed" in held["reason"]
    assert held["held_by"] == first
    assert (held["endpoint"], held["ordering_key"]) == ("antrean.updatewaktu",
                                                        "antrean:kodebooking=KB-HOLD")
    assert await bpjs_sim.log("antrean/updatewaktu") == []

    async with http.post(f"{antrean.tenang.admin_url}/api/v1/requests/{first}/cancel",
                         headers=admin_headers()) as resp:
        assert resp.status == 200
    async def sent() -> bool:
        return bool(await bpjs_sim.log("antrean/updatewaktu"))

    await wait_until(sent, what="the released task to be sent")


async def test_business_rejection_fails_after_one_attempt_with_the_breaker_closed(
        antrean: Simrs, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    request_id = await antrean.send("POST", "/antreanrs/antrean/add",
                                    booking("KB-REJECT", nomorreferensi="INVALID-123"))
    doc = await antrean.wait_status(request_id, "failed")
    assert doc["attempt_count"] == 1
    assert "Rujukan tidak valid" in doc["reason"]
    async with http.get(f"{antrean.tenang.admin_url}/api/v1/summary",
                        headers=admin_headers()) as resp:
        summary = await resp.json()
    assert summary["upstreams"]["antrean"]["breaker"]["state"] == "closed"


async def test_start_up_says_clearly_when_replays_cannot_be_re_signed(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    await start_tenang(bpjs_config(tmp_path, bpjs_sim, re_sign=False))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("upstream antrean: unsigned_replays = true" in m and "BPJS" in m
               and "which BPJS refuses once their X-timestamp is stale" in m
               and "CANNOT verify the SIMRS's X-signature" in m for m in warned)
