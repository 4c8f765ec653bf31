"""The admin UI in a real browser, with Tenang in front of the BPJS simulator: login,
live dashboard while BPJS is down, retry from the detail page, bulk retry with a dry run,
language switch, logout, untrusted bodies shown as text (no script runs, no dialog
opens), the log's key columns with the card number masked, patient identifiers masked
for a viewer and in full for an admin, and the dd/mm/yyyy date filter. Screenshots of
dashboard, log and detail: `make screenshots` keeps them."""

from __future__ import annotations

import re
from datetime import datetime

from playwright.async_api import Browser, expect

from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.lifecycle import Status
from proxy.observe.patient_data import MASK
from proxy.ops.disclosure import VIEW_FULL
from tests.bpjs_support import waktu
from tests.conftest import wait_until
from tests.e2e.conftest import Session, Simrs

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
# How many line boxes an element's text takes (1: it is not broken across lines).
LINES_OF_TEXT = ("e => { const r = document.createRange(); r.selectNodeContents(e); "
                 "return r.getClientRects().length; }")


async def wait_status(tenang: Tenang, request_ids: list[str], status: Status) -> None:
    async def reached() -> bool:
        rows = [await tenang.backend.log.get(i) for i in request_ids]
        return all(r is not None and r.status is status for r in rows)

    await wait_until(reached, timeout_s=15, what=f"{len(request_ids)} requests to be {status}")


async def cancel_unknown_booking(simrs: Simrs, kode: str) -> str:
    """An Antrean cancel for a booking BPJS does not know yet: rejected for good ("Antrean
    Tidak Ditemukan", failed) until the booking reaches BPJS; then a retry goes through."""
    return await simrs.send("antrean/batal", {"kodebooking": kode,
                                               "keterangan": "pasien tidak jadi berobat"})


async def test_dashboard_shows_backlog_and_open_breaker_live(
        tab: Session, simrs: Simrs, bpjs_sim: RunningSimulator) -> None:
    page = tab.page
    await tab.login("adi")
    await expect(page.get_by_test_id("breaker-antrean")).to_have_text("Koneksi ke BPJS: normal")
    await expect(page.get_by_test_id("count-antrean-pending")).to_have_text("0")

    await bpjs_sim.set_mode("down")
    for i in range(6):
        await simrs.add(f"KB-OUT-{i}")

    # No reload: the page's own polling brings the outage in.
    await expect(page.get_by_test_id("breaker-antrean")).to_have_text(
        "Koneksi ke BPJS: dihentikan sementara")
    await expect(page.get_by_test_id("count-antrean-pending")).to_have_text("6")
    await expect(page.get_by_test_id("opened-antrean")).to_contain_text("WIB")
    await expect(page.locator("#upstream-antrean")).to_have_attribute("data-state", "open")
    await expect(page.locator("#upstream-antrean img")).to_have_js_property("complete", True)
    await tab.screenshot("dashboard")
    assert tab.dialogs == []
    assert await bpjs_sim.log("antrean/add", outcome="down"), "BPJS really was tried"
    assert await bpjs_sim.log("antrean/add", outcome="ok") == []


async def test_retry_from_the_detail_page(tab: Session, tenang: Tenang, simrs: Simrs,
                                          bpjs_sim: RunningSimulator) -> None:
    request_id = await cancel_unknown_booking(simrs, "KB-RETRY")
    await wait_status(tenang, [request_id], Status.FAILED)
    await simrs.add_at_bpjs("KB-RETRY")

    page = tab.page
    await tab.login("opa")
    await page.goto(f"{tab.base}/requests/{request_id}")
    await expect(page.locator("#status")).to_have_text("ditolak")
    await expect(page.locator("body")).to_contain_text("Antrean Tidak Ditemukan")
    await page.locator("#retry").click()
    await expect(page.locator("#notice")).to_have_text(
        "Permintaan dijadwalkan untuk dikirim ulang sekarang.")
    await wait_status(tenang, [request_id], Status.SUCCEEDED)
    await page.reload()
    await expect(page.locator("#status")).to_have_text("berhasil")
    await expect(page.locator("ol.history")).to_contain_text("dikirim ulang oleh operator")
    await expect(page.locator("ol.history")).to_contain_text("opa")
    await tab.screenshot("detail")
    assert len(await bpjs_sim.log("antrean/batal", outcome="ok")) == 1


async def test_bulk_retry_with_a_dry_run(tab: Session, tenang: Tenang, simrs: Simrs,
                                         bpjs_sim: RunningSimulator) -> None:
    ids = [await cancel_unknown_booking(simrs, f"KB-BULK-{i}") for i in range(4)]
    await wait_status(tenang, ids, Status.FAILED)
    for i in range(4):
        await simrs.add_at_bpjs(f"KB-BULK-{i}")
    ok = [await simrs.add(f"KB-OK-{i}") for i in range(3)]  # a few that go through
    await wait_status(tenang, ok, Status.SUCCEEDED)

    page = tab.page
    await tab.login("opa")
    await page.get_by_role("link", name="Log permintaan").click()
    await page.locator("select[name=status]").select_option("failed")
    await page.get_by_role("button", name="Cari").click()
    await expect(page.locator("table.log tbody tr")).to_have_count(4)
    await page.locator("#bulk-retry").click()
    await expect(page.locator("#dry-run")).to_have_text(
        "Uji coba: 4 permintaan akan dikirim ulang.")
    await page.locator("#bulk-confirm").click()
    await expect(page.locator("#job-state")).to_have_text("selesai")
    await expect(page.locator("#job-retried")).to_have_text("4")
    await wait_status(tenang, ids, Status.SUCCEEDED)

    await page.goto(f"{tab.base}/requests")
    await expect(page.locator("table.log tbody tr")).to_have_count(7)
    await tab.screenshot("requests")
    assert len(await bpjs_sim.log("antrean/batal", outcome="ok")) == 4


async def test_language_switch_and_logout(tab: Session) -> None:
    page = tab.page
    await tab.login("vera")
    await expect(page.locator("h1")).to_have_text("Dasbor")
    await page.locator("#lang-en").click()
    await expect(page.locator("h1")).to_have_text("Dashboard")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.get_by_role("link", name="Request log").click()
    await expect(page.locator("h1")).to_have_text("Request log")
    await page.locator("#lang-id").click()
    await expect(page.locator("h1")).to_have_text("Log permintaan")
    await page.locator("#logout").click()
    await expect(page).to_have_url(tab.base + "/login")
    await page.goto(tab.base + "/requests")
    await expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)requests$"))


async def test_untrusted_bodies_are_text_and_no_dialog_fires(
        tab: Session, tenang: Tenang, simrs: Simrs) -> None:
    # A booking BPJS rejects ("Rujukan tidak valid") with markup in its free-text field,
    # and a body that is not even JSON (BPJS refuses it too).
    request_id = await simrs.add("KB-XSS", nomorreferensi="INVALID-XSS",
                                 keterangan=XSS_SCRIPT + " " + XSS_IMG)
    raw = await simrs.send("antrean/add", XSS_SCRIPT + XSS_IMG)
    await wait_status(tenang, [request_id, raw], Status.FAILED)

    page = tab.page
    await tab.login("adi")
    for rid in (request_id, raw):
        await page.goto(f"{tab.base}/requests/{rid}")
        await expect(page.locator("#request-body")).to_contain_text(XSS_SCRIPT)
        await expect(page.locator("#request-body")).to_contain_text(XSS_IMG)
        await expect(page.locator("#request-body img")).to_have_count(0)
        await expect(page.locator("#status")).to_have_text("ditolak")
    await page.goto(f"{tab.base}/requests/{request_id}")
    await expect(page.locator("body")).to_contain_text("Rujukan tidak valid")
    await page.goto(f"{tab.base}/requests?q=onerror")
    await expect(page.locator("table.log tbody tr")).to_have_count(2)
    assert tab.dialogs == []


async def test_log_shows_search_keys_with_the_card_number_masked(
        tab: Session, tenang: Tenang, simrs: Simrs) -> None:
    add = await simrs.add("KB-KEY-1", nomorkartu="0001234567890")
    await wait_status(tenang, [add], Status.SUCCEEDED)
    task = await simrs.send("antrean/updatewaktu", {"kodebooking": "KB-KEY-1", "taskid": 3,
                                                    "waktu": waktu(30)})
    await wait_status(tenang, [task], Status.SUCCEEDED)

    page = tab.page
    await tab.login("vera")
    await page.get_by_role("link", name="Log permintaan").click()
    row = page.locator(f'tr[data-id="{add}"]')
    await expect(row.locator('[data-key="booking"]')).to_have_text("KB-KEY-1")
    for key in ("booking", "card"):  # real table cells, each value on one line
        cell = row.locator(f'[data-key="{key}"]')
        await expect(cell).to_have_css("display", "table-cell")
        lines = await cell.evaluate(LINES_OF_TEXT)
        assert lines == 1, (key, lines)
    await expect(row.locator('[data-key="card"]')).to_have_text(MASK * 9 + "7890")
    await expect(row.locator('[data-key="endpoint"]')).to_contain_text(
        "Antrean: tambah antrean")
    await expect(row.locator('[data-key="endpoint"]')).to_have_attribute(
        "title", "POST /antreanrs/antrean/add")
    row = page.locator(f'tr[data-id="{task}"]')
    await expect(row.locator('[data-key="task"]')).to_have_text("3")
    await expect(row.locator('[data-key="endpoint"]')).to_contain_text("Antrean: waktu tugas")
    await expect(page.locator("table.log")).not_to_contain_text("0001234567890")
    # Staff search by the full number; the log still shows it masked.
    await page.locator("input[name=q]").fill("0001234567890")
    await page.get_by_role("button", name="Cari").click()
    await expect(page.locator("table.log tbody tr")).to_have_count(1)
    await expect(page.locator('tr[data-id] [data-key="card"]')).to_have_text(
        MASK * 9 + "7890")
    # Filtering by the words on the page finds the endpoint behind them.
    await page.locator("input[name=q]").fill("")
    await page.locator("input[name=endpoint]").fill("Antrean: waktu tugas")
    await page.get_by_role("button", name="Cari").click()
    await expect(page.locator("table.log tbody tr")).to_have_count(1)
    await expect(page.locator(f'tr[data-id="{task}"]')).to_have_count(1)
    await expect(page.locator("input[name=endpoint]")).to_have_value("antrean.updatewaktu")
    await page.goto(tab.base + "/requests")
    await page.locator("#lang-en").click()
    await expect(page.locator(f'tr[data-id="{add}"] [data-key="endpoint"]')).to_contain_text(
        "Antrean: add booking")


async def test_patient_data_masked_for_a_viewer_in_full_for_an_admin(
        tab: Session, tenang: Tenang, simrs: Simrs, chromium: Browser) -> None:
    nik, card, phone = "3201019876543210", "0009876543210", "081298765432"
    add = await simrs.add("KB-PDP", nik=nik, nomorkartu=card, nohp=phone)
    await wait_status(tenang, [add], Status.SUCCEEDED)

    page = tab.page
    await tab.login("vera")
    await page.get_by_role("link", name="Log permintaan").click()
    cell = page.locator(f'tr[data-id="{add}"] [data-key="card"]')
    await expect(cell).to_have_text(MASK * 9 + "3210")
    await expect(page.locator("table.log")).not_to_contain_text(card)
    await page.locator(f'tr[data-id="{add}"] a').click()
    body = page.locator("#request-body")
    await expect(body).to_contain_text(f'"nik": "{MASK * 12}3210"')
    await expect(body).to_contain_text(f'"nohp": "{MASK * 8}5432"')
    await expect(body).to_contain_text('"kodebooking": "KB-PDP"')
    for full in (nik, card, phone):
        await expect(page.locator("main")).not_to_contain_text(full)
    await expect(page.locator('[data-key="card"]')).to_have_text(MASK * 9 + "3210")
    assert [e for e in await tenang.backend.audit.audit_entries()
            if e.action == VIEW_FULL] == [], "a masked view is no disclosure"

    context = await chromium.new_context(viewport={"width": 1360, "height": 900})
    admin = Session(await context.new_page(), tab.base, tab.shots)
    await admin.login("adi")
    await admin.page.get_by_role("link", name="Log permintaan").click()
    await expect(admin.page.locator(f'tr[data-id="{add}"] [data-key="card"]')).to_have_text(
        card)
    await admin.page.locator(f'tr[data-id="{add}"] a').click()
    body = admin.page.locator("#request-body")
    for full in (nik, card, phone):
        await expect(body).to_contain_text(full)
    await context.close()
    [seen] = [e for e in await tenang.backend.audit.audit_entries() if e.action == VIEW_FULL]
    assert (seen.actor, seen.target, seen.detail) == ("adi", add, "ui detail")
    assert tab.dialogs == admin.dialogs == []


async def test_date_filter_is_day_first_in_wib(tab: Session, tenang: Tenang,
                                               simrs: Simrs) -> None:
    request_id = await simrs.add("KB-DATE")
    stored = await tenang.backend.log.get(request_id)
    assert stored is not None
    day = datetime.fromtimestamp(stored.received_at, WIB).date()
    dmy = day.strftime("%d/%m/%Y")

    page = tab.page
    await tab.login("vera")
    await page.goto(tab.base + "/requests")
    since = page.locator("#filter-from")
    await expect(since).to_have_attribute("type", "text")
    await expect(since).to_have_attribute("placeholder", "hh/bb/tttt")
    await since.fill(day.isoformat())  # the old format: the browser itself asks again
    assert await since.evaluate("e => e.validity.patternMismatch") is True
    await since.fill(dmy)
    assert await since.evaluate("e => e.validity.valid") is True
    await page.locator("#filter-to").fill(dmy)
    await page.get_by_role("button", name="Cari").click()
    await expect(page.locator(f'tr[data-id="{request_id}"]')).to_have_count(1)
    await expect(page.locator("#filter-from")).to_have_value(dmy)
    await expect(page.locator(".notice.error")).to_have_count(0)

    # A day that does not exist passes the pattern; the server names the problem.
    await page.locator("#filter-to").fill("31/02/2026")
    await page.get_by_role("button", name="Cari").click()
    await expect(page.locator('[data-error="filter.bad_to"]')).to_contain_text(
        "tulis tanggal sebagai hh/bb/tttt")
    await expect(page.locator("#filter-to")).to_have_value("31/02/2026")
    await expect(page.locator("#filter-to")).to_have_attribute("aria-invalid", "true")


async def test_maintenance_window_typed_day_first(tab: Session, tenang: Tenang) -> None:
    page = tab.page
    await tab.login("adi")
    await page.get_by_text("Jadwalkan pemeliharaan").click()
    starts = page.locator('input[name="starts_at"]')
    await expect(starts).to_have_attribute("type", "text")
    await starts.fill("2099-03-01T22:00")
    assert await starts.evaluate("e => e.validity.patternMismatch") is True
    await starts.fill("01/03/2099 22:00")
    assert await starts.evaluate("e => e.validity.valid") is True
    await page.locator('input[name="ends_at"]').fill("02/03/2099 00.30")
    await page.locator('input[name="reason"]').fill("BPJS upgrade")
    await page.get_by_role("button", name="Simpan jadwal").click()
    await expect(page.locator(".maintenance li")).to_contain_text(
        "01/03/2099 22:00 WIB \u2013 02/03/2099 00:30 WIB")
    [window] = await tenang.maintenance.windows()
    assert window.reason == "BPJS upgrade"
