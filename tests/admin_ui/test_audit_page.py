"""The audit trail page (/audit) over real HTTP: entries from real actions, keyset pages,
the target filter, escaping, who may see it, bad query values and the nav link."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest

from admin_ui.fmt import wib
from admin_ui.i18n import LANGS, catalog
from admin_ui.views_audit import ACTIONS, PAGE_SIZE
from proxy.app import Tenang
from proxy.lifecycle import Status
from tests.admin_ui.conftest import Browser, submit
from tests.admin_ui.helpers import settle
from tests.conftest import admin_headers

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@dataclass
class Row:
    id: int
    cells: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # hrefs inside the row

    @property
    def visible(self) -> tuple[str, str, str, str]:
        """(actor, action, target, detail) as the page shows them."""
        return self.cells[1], self.cells[2], self.cells[3], self.cells[4]


class _Rows(HTMLParser):
    """The entries of the audit table, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self._row: Row | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-audit-id"):
            self._row = Row(int(a["data-audit-id"] or ""))
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "a" and self._row is not None and a.get("href"):
            self._row.links.append(a["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.cells.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rows(page: str) -> list[Row]:
    parser = _Rows()
    parser.feed(page)
    return parser.rows


def link(page: str, link_id: str) -> str | None:
    found = re.search(rf'<a href="([^"]*)" id="{link_id}"', page)
    return None if found is None else found.group(1).replace("&amp;", "&")


async def test_auditor_sees_real_actions_newest_first_with_request_links(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]],
        browsers: Callable[[str], Browser], http: aiohttp.ClientSession) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-AUDIT"}')
    await settle(ui.backend, request_id, Status.DEAD)
    admin = await as_role("adi")
    assert await browsers(ui.admin_url).login("adi", "salah-sekali") == 401
    status, _, _ = await admin.post(f"/requests/{request_id}/retry")
    assert status == 303
    async with http.post(f"{ui.admin_url}/api/v1/requests/{request_id}/cancel",
                         headers=admin_headers()) as resp:
        assert resp.status == 200, await resp.text()
    auditor = await as_role("audi")

    status, page, _ = await auditor.get("/audit")
    assert status == 200
    shown = rows(page)
    assert [r.visible for r in shown] == [
        ("audi", "masuk", "", ""),
        ("api-token", "pembatalan", request_id, "pending -> cancelled"),
        ("adi", "kirim ulang", request_id, "dead -> pending"),
        ("adi", "gagal masuk", "", "wrong password"),
        ("adi", "masuk", "", ""),
    ]
    assert [r.id for r in shown] == sorted((r.id for r in shown), reverse=True)
    stored = await ui.backend.audit.audit_entries()
    assert [r.cells[0] for r in shown] == [wib(e.at) for e in stored], "WIB times"
    assert all(re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d WIB", r.cells[0]) for r in shown)
    assert shown[1].links == shown[2].links == [f"/requests/{request_id}"]
    assert shown[0].links == shown[3].links == [], "no target, no link"
    assert link(page, "older") is None and link(page, "newest") is None, "a single page"
    status, detail, _ = await auditor.get(shown[2].links[0])
    assert status == 200 and "KB-AUDIT" in detail

    await auditor.get("/lang/en?next=/audit")
    _, page, _ = await auditor.get("/audit")
    # The auditor's look at the detail page (identifiers in full) is itself audited.
    assert [r.cells[2] for r in rows(page)] == [
        "request seen in full (NIK, card and phone numbers shown)", "logged in", "cancel",
        "retry", "failed login", "logged in"]


async def test_older_link_pages_through_everything_without_overlap_or_gap(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    store = ui.backend
    now = time.time()
    for i in range(PAGE_SIZE + 1):  # two targets, each more than one page
        await store.audit.audit("bot", "note", "maintenance:8", f"n{i}", now)
        await store.audit.audit("bot", "note", "maintenance:9", f"n{i}", now)
    auditor = await as_role("audi")
    everything = [e.id for e in await store.audit.audit_entries(limit=10_000)]
    assert len(everything) == 2 * PAGE_SIZE + 3  # and the auditor's login

    async def walk(path: str) -> list[list[Row]]:
        pages: list[list[Row]] = []
        next_path: str | None = path
        while next_path is not None:
            status, page, _ = await auditor.get(next_path)
            assert status == 200
            pages.append(rows(page))
            if len(pages) > 1:
                assert link(page, "newest") == path, "back to the first page"
            next_path = link(page, "older")
            assert len(pages) < 10, "the older links do not end"
        return pages

    pages = await walk("/audit")
    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 3]
    assert [r.id for p in pages for r in p] == everything, "no overlap, no gap"
    assert pages[0][0].visible == ("audi", "masuk", "", "")
    assert pages[0][1].visible == ("bot", "note", "maintenance:9", f"n{PAGE_SIZE}"), \
        "an unknown action is shown by its raw name, other targets as plain text"
    assert pages[0][1].links == []

    nine = [e.id for e in await store.audit.audit_entries(target="maintenance:9", limit=10_000)]
    pages = await walk("/audit?target=maintenance%3A9")
    assert [len(p) for p in pages] == [PAGE_SIZE, 1], "the filter stays on older pages"
    assert [r.id for p in pages for r in p] == nine
    assert {r.cells[3] for p in pages for r in p} == {"maintenance:9"}


async def test_target_filter_shows_only_that_targets_entries(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    first = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-F1"}')
    second = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-F2"}')
    for request_id in (first, second):
        await settle(ui.backend, request_id, Status.DEAD)
    admin = await as_role("adi")
    for request_id, action in ((first, "retry"), (second, "retry"), (first, "cancel")):
        assert (await admin.post(f"/requests/{request_id}/{action}"))[0] == 303
    status, page, _ = await admin.get("/audit?target=" + first)
    assert status == 200
    assert [r.visible for r in rows(page)] == [
        ("adi", "pembatalan", first, "pending -> cancelled"),
        ("adi", "kirim ulang", first, "dead -> pending")]
    assert f'name="target" value="{first}"' in page, "the filter is shown"
    assert link(page, "clear-filter") == "/audit"
    _, page, _ = await admin.get("/audit?target=" + second)
    assert [r.visible[2] for r in rows(page)] == [second]
    _, page, _ = await admin.get("/audit?target=" + first[:-1])
    assert rows(page) == [] and "Tidak ada catatan audit." in page, "exact match only"
    _, page, _ = await admin.get("/audit?target=")
    assert len(rows(page)) == 4, "an empty filter shows everything"


async def test_untrusted_text_is_shown_escaped(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]],
        browsers: Callable[[str], Browser]) -> None:
    await ui.backend.audit.audit("adi", "note", "maintenance:1", f"reason {XSS}", time.time())
    # Anyone can type a user name at the login form: it reaches the log as the actor.
    assert await browsers(ui.admin_url).login(XSS) == 401
    auditor = await as_role("audi")
    _, page, _ = await auditor.get("/audit")
    assert "<script>alert" not in page
    assert f"reason {ESCAPED}" in page and f'<td class="actor">{ESCAPED}</td>' in page
    assert [r.visible[0] for r in rows(page)][1:3] == [XSS, "adi"], "shown as text"
    _, page, _ = await auditor.get("/audit?target=" + quote(f'"{XSS}'))
    assert "<script>alert" not in page and f'value="&#34;{ESCAPED}"' in page
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag, tag
    assert "style=" not in page and "<style" not in page


async def test_only_auditors_and_admins_may_see_it(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]],
        browsers: Callable[[str], Browser]) -> None:
    for name in ("vera", "opa"):
        status, page, _ = await (await as_role(name)).get("/audit")
        assert status == 403, name
        assert "Peran Anda tidak mengizinkan tindakan ini." in page
        assert "data-audit-id" not in page
    for name in ("audi", "adi"):
        assert (await (await as_role(name)).get("/audit"))[0] == 200, name
    status, _, resp = await browsers(ui.admin_url).get("/audit?target=maintenance:1")
    assert status == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/audit?target=maintenance:1"]}


@pytest.mark.parametrize("query", [
    "before_id=abc", "before_id=-1", "before_id=0", "before_id=1.5", "before_id=%EF%BC%91",
    "before_id=99999999999999999999", "before_id=1%200", "target=" + "x" * 201])
async def test_bad_query_values_get_a_400_page(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], query: str) -> None:
    auditor = await as_role("audi")
    status, page, resp = await auditor.get("/audit?" + query)
    assert status == 400 and resp.content_type == "text/html"
    assert '<p class="notice error" role="alert">Parameter' in page
    assert "Traceback" not in page and "data-audit-id" not in page


async def test_bad_before_id_message_names_the_parameter(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    _, page, _ = await (await as_role("adi")).get("/audit?before_id=abc")
    assert "Parameter before_id tidak valid" in page
    status, page, _ = await (await as_role("adi")).get("/audit?before_id=5&x=1")
    assert status == 200, "a valid before_id, unknown parameters ignored"


async def test_nav_link_only_for_those_who_can_open_it(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    for name, shown in (("vera", False), ("opa", False), ("audi", True), ("adi", True)):
        for path in ("/", "/requests"):
            _, page, _ = await (await as_role(name)).get(path)
            assert ('<a href="/audit" id="nav-audit">Jejak audit</a>' in page) is shown, \
                (name, path)


def test_every_known_action_has_a_label_in_both_languages() -> None:
    for lang in LANGS:
        missing = {a for a in ACTIONS if f"audit.action.{a}" not in catalog(lang)}
        assert missing == set(), lang
