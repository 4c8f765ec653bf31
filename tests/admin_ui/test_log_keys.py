"""The request log shows the keys staff search by (booking code, task id, masked card
number, SEP number) and endpoints in words: extraction, masking, and the page over real
HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from admin_ui.labels import preset_endpoint_names
from admin_ui.row_keys import SEP_RESULT_ENDPOINTS, body_keys, result_sep
from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.lifecycle import Status, Verdict
from proxy.observe.patient_data import MASK
from proxy.store.records import StoredAttempt
from tests.admin_ui.conftest import Browser, submit, with_ui_users
from tests.admin_ui.helpers import settle
from tests.bpjs_support import booking, bpjs_config, today
from tests.conftest import wait_until

CARD = "0001234567890"


def _row(page: str, request_id: str) -> str:
    found = re.search(rf'<tr [^>]*data-id="{request_id}">(.*?)</tr>', page, re.S)
    assert found, f"no row for {request_id}"
    return found.group(1)


def _cell(row: str, key: str) -> str:
    found = re.search(rf'data-key="{key}"[^>]*>(.*?)</td>', row, re.S)
    assert found, key
    return found.group(1).strip()


async def test_log_rows_show_booking_task_and_masked_card(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    add = await submit(http, ui.gateway_url, json.dumps(booking("KB-KEYS-1")))
    task = await submit(http, ui.gateway_url, json.dumps(
        {"kodebooking": "KB-KEYS-1", "taskid": 4, "waktu": 1_764_300_000_000}),
        path="/antreanrs/antrean/updatewaktu")
    bare = await submit(http, ui.gateway_url, b"not json at all")
    b = await as_role("vera")
    _, page, _ = await b.get("/requests")
    assert CARD not in page, "the full card number never reaches the log page"
    row = _row(page, add)
    assert _cell(row, "booking") == "KB-KEYS-1"
    assert _cell(row, "card") == MASK * 9 + "7890"
    assert _cell(row, "task") == "" and _cell(row, "sep") == ""
    assert "Antrean: tambah antrean" in _cell(row, "endpoint")
    assert "antrean.add" in _cell(row, "endpoint"), "the technical name stays for IT"
    row = _row(page, task)
    assert (_cell(row, "booking"), _cell(row, "task")) == ("KB-KEYS-1", "4")
    assert "Antrean: waktu tugas" in _cell(row, "endpoint")
    row = _row(page, bare)
    assert [_cell(row, k) for k in ("booking", "task", "card", "sep")] == ["", "", "", ""]
    _, detail, _ = await b.get(f"/requests/{task}")
    assert ('id="endpoint">Antrean: waktu tugas <small class="tech mono">antrean.updatewaktu'
            in detail)
    _, english, _ = await b.get("/lang/en?next=/requests")
    _, english, _ = await b.get("/requests")
    assert "Antrean: task time" in _cell(_row(english, task), "endpoint")
    assert "Booking code" in english and "Card no." in english


async def test_keys_from_untrusted_bodies_are_escaped_and_cut(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    evil = "<img src=x onerror=alert(1)>" + "A" * 100
    request_id = await submit(http, ui.gateway_url, json.dumps(
        {"kodebooking": evil, "nomorkartu": "<b>x</b>123456789", "taskid": {"nested": 1}}))
    b = await as_role("vera")
    _, page, _ = await b.get("/requests")
    row = _row(page, request_id)
    assert "<img" not in row and "<b>" not in row
    assert _cell(row, "booking") == "&lt;img src=x onerror=alert(1)&gt;" + "A" * 12
    assert _cell(row, "card") == "&lt;b&gt;x&lt;/b&gt;" + MASK * 5 + "6789"
    assert _cell(row, "task") == "", "a nested value is not a key"


async def test_sep_number_comes_from_the_stored_result_and_vclaim_card_is_masked(
        tmp_path: Path, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession,
        start_tenang: Callable[..., Awaitable[Tenang]],
        browsers: Callable[[str], Browser]) -> None:
    tenang = await start_tenang(with_ui_users(bpjs_config(tmp_path, bpjs_sim, "vclaim")))
    body = {"request": {"t_sep": {
        "noKartu": "0009990004321", "tglSep": today(), "ppkPelayanan": "0301R001",
        "jnsPelayanan": "2", "klsRawat": {"klsRawatHak": "2"}, "noMR": "1",
        "rujukan": {"asalRujukan": "1", "tglRujukan": today(),
                    "noRujukan": "0138U0200326P000999", "ppkRujukan": "0138U020"},
        "catatan": "", "diagAwal": "I10", "poli": {"tujuan": "INT", "eksekutif": "0"},
        "user": "Coba Ws"}}}
    async with http.post(tenang.gateway_url + "/vclaim-rest/SEP/2.0/insert",
                         data=json.dumps(body),
                         headers=bpjs_sim.signed_headers("vclaim", method="POST")) as resp:
        insert = resp.headers["X-Tenang-Request-Id"]

    async def delivered() -> bool:
        stored = await tenang.backend.log.get(insert)
        return stored is not None and stored.status is Status.SUCCEEDED

    await wait_until(delivered, what="the SEP insert to reach the simulator")
    [made] = (await bpjs_sim.snapshot())["seps"]
    no_sep = made["no_sep"]
    b = browsers(tenang.admin_url)
    assert await b.login("vera") == 303
    _, page, _ = await b.get("/requests")
    row = _row(page, insert)
    assert _cell(row, "sep") == no_sep
    assert _cell(row, "card") == MASK * 9 + "4321"
    assert "VClaim: buat SEP" in _cell(row, "endpoint")
    assert "0009990004321" not in page
    _, detail, _ = await b.get(f"/requests/{insert}")
    assert f'data-key="sep">{no_sep}<' in detail, "the detail page names the SEP it made"
    assert f'data-key="card">{MASK * 9}4321<' in detail


async def test_sep_number_of_an_update_comes_from_its_body(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    # An Antrean upstream with a VClaim-shaped body: the key is read through the wrapper.
    request_id = await submit(http, ui.gateway_url, json.dumps(
        {"request": {"t_sep": {"noSep": "0301R0011125V000042", "noKartu": "0001112223334"}}}))
    await settle(ui.backend, request_id, Status.SUCCEEDED, verdict=Verdict.SUCCESS,
                 response=b'{"metadata":{"code":200,"message":"OK"},"response":null}')
    _, page, _ = await (await as_role("vera")).get("/requests")
    row = _row(page, request_id)
    assert _cell(row, "sep") == "0301R0011125V000042"
    assert _cell(row, "card") == MASK * 9 + "3334"


def test_body_keys_top_level_and_inside_the_vclaim_wrapper() -> None:
    # The keys of the body as given: a masked body (proxy.ops.disclosure) gives masked keys.
    antrean = body_keys(json.dumps({"kodebooking": "KB1", "taskid": 5,
                                    "nomorkartu": "0001234567890"}).encode())
    assert (antrean.booking, antrean.task, antrean.card, antrean.sep) == (
        "KB1", "5", "0001234567890", "")
    vclaim = body_keys(json.dumps({"request": {"t_sep": {
        "noKartu": "0009990001112", "noSep": "0301R0011125V000001"}}}).encode())
    assert (vclaim.card, vclaim.sep) == ("0009990001112", "0301R0011125V000001")
    assert body_keys(b"\xff not json") == body_keys(b"[1, 2]") == body_keys(b"")
    assert body_keys(b"[" * 100_000) == body_keys(b""), "too deep to parse: no keys, no error"


def _attempt(n: int, verdict: Verdict, body: bytes | None) -> StoredAttempt:
    return StoredAttempt(n, 0.0, 0.1, verdict, 200, None, body, request_id="R")


def test_result_sep_is_the_newest_successful_answer() -> None:
    ok = b'{"metaData":{"code":"200"},"response":{"sep":{"noSep":"0301R0011125V000007"}}}'
    assert result_sep([_attempt(1, Verdict.TRANSIENT, b"<html>"),
                       _attempt(2, Verdict.SUCCESS, ok)]) == "0301R0011125V000007"
    assert result_sep([_attempt(1, Verdict.PERMANENT, ok)]) == "", "only a success counts"
    assert result_sep([_attempt(1, Verdict.SUCCESS, b'{"response": "still-cipher"}')]) == ""
    assert result_sep([_attempt(1, Verdict.SUCCESS, None)]) == ""
    assert preset_endpoint_names() >= SEP_RESULT_ENDPOINTS


async def test_bodies_that_parse_badly_still_show_their_page(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    # A lone surrogate is valid JSON but not UTF-8 text; the page must not fail on it.
    surrogate = await submit(http, ui.gateway_url,
                             b'{"kodebooking": "KB-S", "nomorkartu": "\\ud800123456789",'
                             b' "keterangan": "\\udfff"}')
    b = await as_role("vera")
    status, page, _ = await b.get("/requests")
    assert status == 200
    row = _row(page, surrogate)
    assert _cell(row, "booking") == "KB-S" and _cell(row, "card") == "?" + MASK * 5 + "6789"
    status, detail, _ = await b.get(f"/requests/{surrogate}")
    assert status == 200 and "KB-S" in detail
