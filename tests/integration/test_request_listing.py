"""The request log through the one listing service, over real HTTP: the JSON API filters
by everything the admin UI does (status, upstream, endpoint, WIB days, text), pages with
its cursor to the end, names a bad parameter in a 400, and lists the same requests as
the UI for the same query string."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy import ids
from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from tests.admin_ui.conftest import Browser, with_ui_users
from tests.conftest import FakeClock, admin_headers, make_config
from tests.integration.test_admin_api import api

DAY_1 = datetime(2025, 11, 27, 10, 0, tzinfo=WIB).timestamp()
DAY_S = 86_400.0
ROW = re.compile(r'href="/requests/([0-9A-Z]{26})"')


@dataclasses.dataclass
class Log:
    tenang: Tenang
    by_name: dict[str, str]  # our name for a request -> its id

    def ids(self, *names: str) -> list[str]:
        """Newest first, as every listing returns them."""
        return sorted((self.by_name[n] for n in names), reverse=True)

    @property
    def url(self) -> str:
        return f"{self.tenang.admin_url}/api/v1/requests"


async def _send(http: aiohttp.ClientSession, tenang: Tenang, method: str, path: str,
                body: dict[str, Any]) -> str:
    async with http.request(method, tenang.gateway_url + path, json=body) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["X-Tenang-Request-Id"]


@pytest.fixture
async def log(tmp_path: Path, bpjs_sim: Any, start_tenang: Callable[..., Awaitable[Tenang]],
              http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> Log:
    """Seven requests over three WIB days (27, 28, 29/11/2025), two upstreams, four
    endpoints; one cancelled; two carry the word "needle" in their body."""
    # Ids never sort before one minted earlier in this process, and earlier tests minted
    # theirs at the real time: start from nothing so these past days get their own ids
    # (restored afterwards, so later tests' ids still follow the real ones).
    monkeypatch.setattr(ids, "_last", 0)
    config = make_config(tmp_path, bpjs_sim.url)
    antrean = config.upstreams[0]
    vclaim = dataclasses.replace(antrean, name="vclaim", prefix="/vclaim-rest",
                                 target=bpjs_sim.url + "/vclaim-rest", preset="vclaim")
    config = with_ui_users(dataclasses.replace(config, upstreams=(antrean, vclaim)))
    clock = FakeClock(DAY_1)
    tenang = await start_tenang(config, clock=clock, relay_enabled=False)
    add, batal = "/antreanrs/antrean/add", "/antreanrs/antrean/batal"
    sep = "/vclaim-rest/SEP/2.0/update"
    plan: list[list[tuple[str, str, str, dict[str, Any]]]] = [
        [("add1", "POST", add, {"kodebooking": "KB-1", "catatan": "a NEEDLE here"}),
         ("batal2", "POST", batal, {"kodebooking": "KB-2", "keterangan": "pasien batal"})],
        [("add3", "POST", add, {"kodebooking": "KB-3"}),
         ("sep4", "PUT", sep, {"request": {"t_sep": {"noSep": "0301R0011126V000004"}}}),
         ("add5", "POST", add, {"kodebooking": "KB-5"})],
        [("sep6", "PUT", sep, {"request": {"t_sep": {"noSep": "0301R0011126V000006"}}}),
         ("add7", "POST", add, {"kodebooking": "KB-7", "catatan": "needle again"})],
    ]
    by_name: dict[str, str] = {}
    for day in plan:
        for name, method, path, body in day:
            by_name[name] = await _send(http, tenang, method, path, body)
            clock.advance(60)
        clock.advance(DAY_S - 60 * len(day))
    await api(http, "POST", f"{tenang.admin_url}/api/v1/requests/{by_name['add3']}/cancel")
    return Log(tenang, by_name)


async def _api_ids(http: aiohttp.ClientSession, log: Log, query: str) -> list[str]:
    doc = await api(http, "GET", f"{log.url}?{query}")
    assert doc["next_cursor"] is None, "every test query fits one page"
    return [item["id"] for item in doc["items"]]


FILTERS = [
    ("", ["add1", "batal2", "add3", "sep4", "add5", "sep6", "add7"]),
    ("status=pending", ["add1", "batal2", "sep4", "add5", "sep6", "add7"]),
    ("status=cancelled", ["add3"]),
    ("status=succeeded", []),
    ("upstream=vclaim", ["sep4", "sep6"]),
    ("upstream=antrean&status=pending", ["add1", "batal2", "add5", "add7"]),
    ("endpoint=antrean.add", ["add1", "add3", "add5", "add7"]),
    ("endpoint=vclaim.sep", ["sep4", "sep6"]),
    ("endpoint=antrean.batal", ["batal2"]),
    ("from=28/11/2025&to=28/11/2025", ["add3", "sep4", "add5"]),
    ("from=2025-11-28", ["add3", "sep4", "add5", "sep6", "add7"]),
    ("to=27/11/2025", ["add1", "batal2"]),
    ("from=30/11/2025", []),
    ("q=needle", ["add1", "add7"]),
    ("q=0301R0011126V000006", ["sep6"]),
    ("q=needle&from=29/11/2025&endpoint=antrean.add&upstream=antrean&status=pending",
     ["add7"]),
]


@pytest.mark.parametrize(("query", "names"), FILTERS, ids=[q or "all" for q, _ in FILTERS])
async def test_the_api_filters_by_everything_the_ui_does(
        log: Log, http: aiohttp.ClientSession, query: str, names: list[str]) -> None:
    assert await _api_ids(http, log, query) == log.ids(*names)


async def test_the_ui_and_the_api_list_the_same_requests_for_the_same_query(
        log: Log, http: aiohttp.ClientSession) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        ui = Browser(log.tenang.admin_url, session)
        assert await ui.login("vera") == 303
        for query, names in FILTERS:
            status, page, _ = await ui.get(f"/requests?{query}")
            assert status == 200, query
            assert "notice error" not in page, query
            assert ROW.findall(page) == await _api_ids(http, log, query) == log.ids(*names), \
                query


@pytest.mark.parametrize("query", ["", "upstream=antrean", "q=KB-", "from=28/11/2025"])
@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_the_cursor_pages_to_the_end_without_repeats(
        log: Log, http: aiohttp.ClientSession, query: str, limit: int) -> None:
    everything = await _api_ids(http, log, query)
    assert everything, "the query matches something"
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(everything) + 1):
        suffix = f"&cursor={cursor}" if cursor else ""
        doc = await api(http, "GET", f"{log.url}?{query}&limit={limit}{suffix}")
        assert len(doc["items"]) <= limit
        seen += [item["id"] for item in doc["items"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert cursor is None, "pagination ends"
    assert seen == everything, "every match once, newest first"


@pytest.mark.parametrize(("query", "parameter"), [
    ("status=bogus", "status"),
    ("status=PENDING", "status"),
    ("from=31/02/2026", "from"),
    ("from=yesterday", "from"),
    ("to=2026-13-01", "to"),
    ("from=29/11/2025&to=28/11/2025", "to"),
    ("limit=x", "limit"),
    ("limit=0", "limit"),
    ("limit=501", "limit"),
    ("q=" + "x" * 201, "q"),
])
async def test_a_bad_parameter_is_a_400_naming_it(
        log: Log, http: aiohttp.ClientSession, query: str, parameter: str) -> None:
    async with http.get(f"{log.url}?{query}", headers=admin_headers()) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json"
        doc = await resp.json()
    assert doc["parameter"] == parameter
    assert doc["error"].startswith(f"{parameter}: "), doc
