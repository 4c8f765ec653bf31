"""Admin UI pages over real HTTP: escaping, headers, language, log, detail, actions."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from proxy.lifecycle import Status
from proxy.ops.disclosure import SEARCH_IDENTIFIER
from tests.admin_ui.conftest import Browser, submit
from tests.admin_ui.helpers import settle
from tests.conftest import wait_until

XSS = '<script>alert(1)</script> "><img src=x onerror=alert(1)>'


async def test_stored_bodies_are_shown_escaped(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    request_id = await submit(http, ui.gateway_url, json.dumps({"nama": XSS}))
    await settle(ui.backend, request_id, Status.FAILED,
                 response=b'{"metadata":{"code":201,"message":"<script>alert(2)</script>"}}')
    b = await as_role("opa")
    status, page, _ = await b.get(f"/requests/{request_id}")
    assert status == 200
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page, "the response body too"
    _, log_page, _ = await b.get("/requests?q=" + "onerror")
    assert request_id in log_page and "<img src=x" not in log_page


async def test_every_response_carries_the_security_headers(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    b = await as_role("vera")
    for path in ("/", "/login", "/requests", "/static/admin.css", "/static/live.js",
                 "/requests/01HZZZZZZZZZZZZZZZZZZZZZZZ", "/api/v1/summary",
                 "/ui/chart/antrean.svg"):
        _, _, resp = await b.get(path)
        csp = resp.headers.get("Content-Security-Policy", "")
        assert csp.startswith("default-src 'self'"), path
        assert "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["X-Frame-Options"] == "DENY", path


async def test_templates_have_no_inline_script_or_style(ui: Tenang,
                                                        as_role: Callable[[str], Awaitable[Browser]]
                                                        ) -> None:
    b = await as_role("adi")
    for path in ("/", "/login", "/requests", "/bulk"):
        _, page, _ = await b.get(path)
        for tag in re.findall(r"<script[^>]*>", page):
            assert "src=" in tag, (path, tag)
        assert "style=" not in page and "<style" not in page and " on" + "click" not in page


async def test_indonesian_by_default_english_by_switch(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    b = await as_role("vera")
    _, page, _ = await b.get("/")
    assert '<html lang="id">' in page and "Dasbor" in page and "menunggu" in page
    status, _, resp = await b.get("/lang/en?next=/requests")
    assert status == 303 and resp.headers["Location"] == "/requests"
    _, page, _ = await b.get("/requests")
    assert '<html lang="en">' in page and "Request log" in page
    status, _, resp = await b.get("/lang/en?next=https://evil.example/")
    assert resp.headers["Location"] == "/"
    assert (await b.get("/lang/xx"))[0] == 404


async def test_dashboard_shows_counts_sep_and_breaker(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    for i in range(3):
        await submit(http, ui.gateway_url, f'{{"kodebooking": "KB-D{i}"}}')
    dead = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-DEAD"}')
    await settle(ui.backend, dead, Status.DEAD)
    b = await as_role("vera")
    _, page, _ = await b.get("/")
    assert 'data-testid="count-antrean-pending">3<' in page
    assert 'data-testid="count-antrean-dead">1<' in page
    assert 'data-testid="breaker-antrean">Koneksi ke BPJS: normal<' in page
    assert '<img src="/ui/chart/antrean.svg"' in page
    status, body, resp = await b.get("/ui/dashboard.json")
    data = json.loads(body)
    assert data["fields"]["antrean.pending"] == "3"
    assert data["fields"]["antrean.dead"] == "1"
    assert data["fields"]["antrean.sep_open"] == "0"
    assert data["states"]["antrean.breaker"] == "closed"
    assert "WIB" in data["fields"]["antrean.last_attempt"]
    status, svg, resp = await b.get("/ui/chart/antrean.svg")
    assert status == 200 and resp.content_type == "image/svg+xml"
    assert svg.startswith("<svg") and 'fill="#c62828"' in svg
    assert (await b.get("/ui/chart/nope.svg"))[0] == 404


async def test_request_log_filters_and_pages(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    ids = [await submit(http, ui.gateway_url, f'{{"kodebooking": "KB-{i:03d}", '
                                              f'"noKartu": "000{i:010d}"}}')
           for i in range(30)]
    await settle(ui.backend, ids[5], Status.FAILED)
    b = await as_role("vera")
    _, first, _ = await b.get("/requests?limit=25")
    rows = re.findall(r'href="/requests/([0-9A-Z]{26})"', first)
    newest_first = sorted(ids, reverse=True)  # ids minted in one millisecond sort randomly
    assert rows == newest_first[:25]
    older = re.search(r'href="/requests\?([^"]*cursor=[^"]+)" id="older"', first)
    assert older
    _, second, _ = await b.get("/requests?" + older.group(1).replace("&amp;", "&"))
    assert re.findall(r'href="/requests/([0-9A-Z]{26})"', second) == newest_first[25:]
    _, found, _ = await b.get("/requests?q=KB-007")
    assert re.findall(r'href="/requests/([0-9A-Z]{26})"', found) == [ids[7]]
    # Counter staff search by the card number on the patient's card: found, shown
    # masked, the lookup audited (tests/admin_ui/test_full_views.py).
    _, by_card, _ = await b.get("/requests?q=0000000000007")
    assert re.findall(r'href="/requests/([0-9A-Z]{26})"', by_card) == [ids[7]]
    assert 'data-key="card">*********0007<' in by_card
    [lookup] = [e for e in await ui.backend.audit.audit_entries(limit=100)
                if e.action == SEARCH_IDENTIFIER]
    assert (lookup.actor, lookup.detail) == ("vera",
                                             f"ui log: q=*********0007: 1 requests: {ids[7]}")
    _, failed, _ = await b.get("/requests?status=failed&upstream=antrean")
    assert re.findall(r'href="/requests/([0-9A-Z]{26})"', failed) == [ids[5]]
    _, bad, _ = await b.get("/requests?status=bogus&from=kemarin")
    assert "Status tidak dikenal" in bad
    assert "tidak valid: tulis tanggal sebagai hh/bb/tttt, mis. 28/11/2026" in bad


async def test_detail_shows_masked_headers_attempts_and_history(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-DETAIL"}')
    await settle(ui.backend, request_id, Status.FAILED)
    b = await as_role("opa")
    _, page, _ = await b.get(f"/requests/{request_id}")
    assert "9f8e7d6c5b4a39281706" not in page, "user_key is masked"
    assert "9f8e…" in page
    assert "&#34;kodebooking&#34;: &#34;KB-DETAIL&#34;" in page, "pretty JSON, escaped"
    assert "Data tidak valid" in page and "ditolak BPJS" in page and "250 ms" in page
    assert "diterima dari SIMRS" in page and "percobaan #1" in page
    assert 'id="retry"' in page and 'id="cancel"' in page
    assert (await b.get("/requests/01HZZZZZZZZZZZZZZZZZZZZZZZ"))[0] == 404


async def test_retry_and_cancel_from_the_detail_page_are_audited(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-ACT"}')
    await settle(ui.backend, request_id, Status.DEAD)
    b = await as_role("opa")
    status, _, resp = await b.post(f"/requests/{request_id}/retry")
    assert status == 303
    assert resp.headers["Location"] == f"/requests/{request_id}?notice=retried"
    stored = await ui.backend.log.get(request_id)
    assert stored is not None and stored.status is Status.PENDING
    status, _, resp = await b.post(f"/requests/{request_id}/retry")
    assert resp.headers["Location"].endswith("notice=invalid"), "pending cannot be retried"
    await b.post(f"/requests/{request_id}/cancel")
    stored = await ui.backend.log.get(request_id)
    assert stored is not None and stored.status is Status.CANCELLED
    _, page, _ = await b.get(f"/requests/{request_id}?notice=cancelled")
    assert "Permintaan dibatalkan." in page
    assert "dikirim ulang oleh operator" in page and "dibatalkan oleh operator" in page
    entries = await ui.backend.audit.audit_entries(target=request_id)
    assert [(e.actor, e.action, e.detail) for e in entries] == [
        ("opa", "cancel", "pending -> cancelled"), ("opa", "retry", "dead -> pending")]
    _, page, _ = await b.get(f"/requests/{request_id}?notice=<b>x</b>")
    assert "<b>x</b>" not in page and "&lt;b&gt;" not in page, "only known notices show"


async def test_bulk_retry_dry_run_then_paced_job(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    ids = [await submit(http, ui.gateway_url, f'{{"kodebooking": "KB-B{i}"}}')
           for i in range(6)]
    for request_id in ids[:5]:
        await settle(ui.backend, request_id, Status.DEAD if request_id in ids[:3]
                     else Status.FAILED)
    b = await as_role("opa")
    _, page, _ = await b.get("/bulk?upstream=antrean")
    assert "5 permintaan akan dikirim ulang" in page
    _, page, _ = await b.get("/bulk?status=dead")
    assert "3 permintaan akan dikirim ulang" in page
    status, page, _ = await b.get("/bulk?status=succeeded")
    assert status == 400 and "hanya untuk status" in page
    status, _, resp = await b.post("/bulk", {"status": "dead", "expected": "3"})
    assert status == 303
    job_url = resp.headers["Location"]
    assert re.fullmatch(r"/bulk/\d+", job_url)

    async def done() -> bool:
        # The job is marked finished just before its closing audit entry is written.
        finished = json.loads((await b.get(job_url + ".json"))[1])["stop"] is True
        entries = await ui.backend.audit.audit_entries(limit=1)
        return finished and bool(entries) and entries[0].action == "bulk_retry_done"

    await wait_until(done, what="the bulk job to finish and audit its end")
    data = json.loads((await b.get(job_url + ".json"))[1])
    assert data["fields"]["retried"] == "3" and data["fields"]["skipped"] == "0"
    for request_id in ids[:3]:
        stored = await ui.backend.log.get(request_id)
        assert stored is not None and stored.status is Status.PENDING
    stored = await ui.backend.log.get(ids[3])
    assert stored is not None and stored.status is Status.FAILED, "outside the filter"
    entries = await ui.backend.audit.audit_entries(limit=20)
    assert [e.action for e in entries[:5]] == ["bulk_retry_done", "retry", "retry", "retry",
                                               "bulk_retry"]
    assert entries[4].detail == "job #1: status=dead; dry run 3"
    assert entries[1].detail == "dead -> pending; bulk retry #1"
    _, page, _ = await b.get(job_url)
    assert "status=dead" in page, "the technical filter, for IT"
    assert re.search(r'id="job-filter"[^>]*>Status: gagal total\s', page), "and in words"


async def test_csv_export_for_auditors_is_audited_and_formula_safe(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    await submit(http, ui.gateway_url, b'{"kodebooking": "KB-CSV", "taskid": 3}')
    formula = await submit(http, ui.gateway_url, b"=HYPERLINK(\"http://x\")")
    key_formula = await submit(http, ui.gateway_url, b'{"kodebooking": "=1+2", "x": "\\ud800"}')
    b = await as_role("audi")
    status, text, resp = await b.get("/requests.csv")
    assert status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["id", "received_at_wib", "upstream"]
    header = rows[0]
    assert header[-4:] == ["kodebooking", "taskid", "nosep", "body"]
    assert rows[1][0] == key_formula, "newest first"
    assert rows[1][header.index("kodebooking")] == "'=1+2", "a key cell is neutralised too"
    assert rows[2][0] == formula
    assert rows[2][-1].startswith("'="), "formula neutralised"
    assert rows[3][-1] == '{"kodebooking": "KB-CSV", "taskid": 3}'
    assert (rows[3][header.index("kodebooking")], rows[3][header.index("taskid")]) == (
        "KB-CSV", "3")
    # Every cell quoted, so a spreadsheet splitting on ';' (Indonesian Excel) cannot start
    # a cell at the '=' in the middle of a body.
    data_lines = text.splitlines()[1:]
    assert data_lines and all(line.startswith('"') and line.endswith('"')
                              for line in data_lines)
    (entry, *_) = await ui.backend.audit.audit_entries()
    assert (entry.actor, entry.action, entry.detail) == ("audi", "export_csv", "all")


async def test_maintenance_forms_for_operators_and_admins(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    # Maintenance is ops work (issue 5: "an operator can force an upstream's breaker
    # open"): operators and admins get the forms, a viewer sees the windows only.
    admin, viewer = await as_role("adi"), await as_role("vera")
    _, page, _ = await viewer.get("/")
    assert "Jadwal pemeliharaan BPJS" in page and 'action="/maintenance"' not in page
    status, _, _ = await viewer.post("/maintenance", {"upstream": "antrean", "reason": "x"})
    assert status == 403
    _, page, _ = await (await as_role("opa")).get("/")
    assert 'action="/maintenance"' in page
    status, _, resp = await admin.post("/maintenance", {
        "upstream": "antrean", "reason": "BPJS <b>maintenance</b>", "starts_at": "",
        "ends_at": ""})
    assert status == 303 and resp.headers["Location"] == "/?done=maintenance_scheduled"
    _, page, _ = await admin.get("/?done=maintenance_scheduled")
    assert "Jadwal pemeliharaan disimpan." in page
    assert "BPJS &lt;b&gt;maintenance&lt;/b&gt;" in page and "sedang berlangsung" in page
    window_id = re.search(r'action="/maintenance/(\d+)/cancel"', page)
    assert window_id
    assert ui.breakers["antrean"].state.value == "open", "the window holds the circuit open"
    status, _, _ = await admin.post(f"/maintenance/{window_id.group(1)}/cancel")
    assert status == 303
    _, page, _ = await admin.get("/")
    assert "Tidak ada jadwal pemeliharaan." in page
    actions = [(e.actor, e.action) for e in await ui.backend.audit.audit_entries(limit=5)]
    assert ("adi", "maintenance_cancel") in actions
    assert ("adi", "maintenance_schedule") in actions
    status, page, _ = await admin.post("/maintenance", {"upstream": "nope", "reason": "x"})
    assert status == 400


async def test_maintenance_times_are_typed_day_first_in_wib(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    admin = await as_role("adi")
    _, page, _ = await admin.get("/")
    assert 'type="datetime-local"' not in page, "no browser-locale widget (mm/dd/yyyy)"
    assert 'name="starts_at" placeholder="hh/bb/tttt jj:mm"' in page
    status, _, _ = await admin.post("/maintenance", {
        "upstream": "antrean", "reason": "BPJS upgrade", "starts_at": "01/03/2099 22:00",
        "ends_at": "02/03/2099 00.30"})
    assert status == 303
    [window] = await ui.maintenance.windows()
    assert window.starts_at == datetime(2099, 3, 1, 22, 0, tzinfo=WIB).timestamp()
    assert window.ends_at == datetime(2099, 3, 2, 0, 30, tzinfo=WIB).timestamp()
    _, page, _ = await admin.get("/")
    assert "01/03/2099 22:00 WIB \u2013 02/03/2099 00:30 WIB" in page
    status, page, _ = await admin.post("/maintenance", {
        "upstream": "antrean", "reason": "x", "starts_at": "03/01/2099 10:00 PM"})
    assert status == 400 and "tulis hh/bb/tttt jj:mm (WIB)" in page
    assert len(await ui.maintenance.windows()) == 1, "nothing saved"
