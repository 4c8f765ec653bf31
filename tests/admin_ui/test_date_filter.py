"""The request log's date filter: dd/mm/yyyy text fields read as WIB days, old ISO links
still working, and a clear error (never a silent wider filter) for a bad date."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from proxy.lifecycle import Status
from tests.admin_ui.conftest import Browser, submit
from tests.admin_ui.helpers import settle

ROW = re.compile(r'href="/requests/([0-9A-Z]{26})"')


async def test_dates_are_dd_mm_yyyy_wib_days_and_old_links_work(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-DAY"}')
    stored = await ui.backend.log.get(request_id)
    assert stored is not None
    day = datetime.fromtimestamp(stored.received_at, WIB).date()  # its day in Jakarta
    dmy, iso = day.strftime("%d/%m/%Y"), day.isoformat()
    before = (day - timedelta(days=1)).strftime("%d/%m/%Y")
    after = (day + timedelta(days=1)).strftime("%d/%m/%Y")
    b = await as_role("vera")
    for query, found in ((f"from={dmy}&to={dmy}", [request_id]), (f"from={after}", []),
                         (f"to={before}", []), (f"from={iso}&to={iso}", [request_id])):
        _, page, _ = await b.get("/requests?" + query)
        assert ROW.findall(page) == found, query
        assert "notice error" not in page, query
    _, page, _ = await b.get(f"/requests?from={iso}")
    assert f'name="from" id="filter-from" value="{dmy}"' in page, "redisplayed day first"
    assert 'type="date"' not in page, "no browser-locale date widget (mm/dd/yyyy)"
    assert 'placeholder="hh/bb/tttt"' in page and "Dari tanggal (WIB)" in page


async def test_a_bad_date_is_named_kept_for_correction_and_never_widens_a_bulk_retry(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    dead = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-BADDATE"}')
    await settle(ui.backend, dead, Status.DEAD)
    b = await as_role("opa")
    status, page, _ = await b.get("/requests?status=dead&to=31/02/2026")
    assert status == 200
    assert 'data-error="filter.bad_to"' in page
    assert "&#34;Sampai tanggal&#34; tidak valid: tulis tanggal sebagai hh/bb/tttt" in page
    assert re.search(r'name="to" id="filter-to" value="31/02/2026"[^>]*aria-invalid="true"',
                     page), "the typed value stays, marked, to be corrected"
    assert ROW.findall(page) == [dead], "the bad bound is ignored, the rest applies"
    assert 'id="bulk-retry"' not in page, "no bulk retry from a filter with an error"
    assert "to=31" not in page.split("</form>", 1)[1], "links never carry the bad date"
    status, preview, _ = await b.get("/bulk?status=dead&to=31/02/2026")
    assert status == 400 and 'data-error="filter.bad_to"' in preview
    assert 'id="bulk-confirm"' not in preview
    _, english, _ = await b.get("/lang/en?next=/requests")
    _, english, _ = await b.get("/requests?from=2026-13-01")
    assert "&#34;From date&#34; is not a valid date: write it as dd/mm/yyyy" in english
    _, backwards, _ = await b.get("/requests?from=05/03/2026&to=01/03/2026")
    assert 'data-error="filter.bad_range"' in backwards
