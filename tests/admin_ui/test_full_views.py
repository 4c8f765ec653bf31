"""The request log's full views, audited for what they disclose, over real HTTP: a page
polled again (the UI refreshes itself, scripts poll the API) writes no new ``list_full``
entry; a request newly on the page does, naming it alone. And a viewer's or operator's
search (``q``) by a full NIK, card or phone number finds the request, shown masked, and
is an audited lookup: one ``search_identifier`` entry naming who, the call and the ids
found, the number masked; the same search again writes nothing until it finds more."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.lifecycle import Status
from proxy.ops.disclosure import LIST_FULL, SEARCH_IDENTIFIER
from tests.admin_ui.conftest import Browser, submit
from tests.admin_ui.helpers import settle
from tests.admin_ui.test_patient_data import CARD, NIK, PHONE, SHOWN, api_json, views
from tests.bpjs_support import booking

Login = Callable[[str], Awaitable[Browser]]


async def patient(ui: Tenang, http: aiohttp.ClientSession, kodebooking: str) -> str:
    body = booking(kodebooking) | {"nomorkartu": CARD, "nik": NIK, "nohp": PHONE}
    request_id = await submit(http, ui.gateway_url, json.dumps(body))
    await settle(ui.backend, request_id, Status.FAILED)
    return request_id


def listed(page: str, request_id: str) -> bool:
    return f'data-id="{request_id}"' in page


async def test_a_page_polled_again_is_not_audited_again_and_a_new_request_is(
        ui: Tenang, http: aiohttp.ClientSession, as_role: Login) -> None:
    first = await patient(ui, http, "KB-POLL-1")
    b = await as_role("audi")
    for _ in range(3):
        assert (await b.get("/requests"))[0] == 200
        assert (await api_json(b, "/api/v1/requests"))[0] == 200
    assert [e.detail for e in await views(ui, action=LIST_FULL)] == [
        f"ui log: 1 requests: {first}"]

    second = await patient(ui, http, "KB-POLL-2")
    _, page, _ = await b.get("/requests")
    assert listed(page, first) and listed(page, second)
    entries = await views(ui, action=LIST_FULL)
    assert [e.detail for e in entries] == [f"ui log: 1 requests: {second}",
                                           f"ui log: 1 requests: {first}"]
    # Another auditor was shown neither: both are theirs to be recorded.
    other = await as_role("adi")
    assert (await api_json(other, "/api/v1/requests"))[0] == 200
    [latest, *_] = await views(ui, action=LIST_FULL)
    assert latest.actor == "adi" and latest.detail == f"api list: 2 requests: {second}, {first}"


@pytest.mark.parametrize("name", ["vera", "opa"])
async def test_a_masked_role_finds_a_request_by_an_identifier_audited_and_shown_masked(
        ui: Tenang, http: aiohttp.ClientSession, as_role: Login, name: str) -> None:
    request_id = await patient(ui, http, "KB-SEARCH-1")
    b = await as_role(name)
    for term in (NIK, CARD, PHONE):
        for _ in range(2):  # the page refreshing itself
            _, page, _ = await b.get(f"/requests?q={term}")
            assert listed(page, request_id), f"not found by {term}"
            table = page[page.index('<table class="log"'):]  # not their own search
            assert term not in table and f'data-key="card">{SHOWN[CARD]}<' in table
            _, doc = await api_json(b, f"/api/v1/requests?q={term}")
            assert [i["id"] for i in doc["items"]] == [request_id]
            assert term not in json.dumps(doc)
    entries = await views(ui, action=SEARCH_IDENTIFIER)
    assert [(e.actor, e.target, e.detail) for e in reversed(entries)] == [
        (name, None, f"ui log: q={SHOWN[term]}: 1 requests: {request_id}")
        for term in (NIK, CARD, PHONE)]
    # Searches naming no full identifier are no lookup of one.
    for term in ("KB-SEARCH-1", NIK[-4:]):
        _, page, _ = await b.get(f"/requests?q={term}")
        assert listed(page, request_id), f"not found by {term}"
    # A new request the same search finds is recorded, alone.
    second = await patient(ui, http, "KB-SEARCH-3")
    _, doc = await api_json(b, f"/api/v1/requests?q={CARD}")
    assert [i["id"] for i in doc["items"]] == [second, request_id]
    [latest, *rest] = await views(ui, action=SEARCH_IDENTIFIER)
    assert len(rest) == 3 and latest.detail == f"api list: q={SHOWN[CARD]}: 1 requests: {second}"
    assert await views(ui, action=LIST_FULL) == []


async def test_an_operators_bulk_dry_run_by_a_card_number_is_an_audited_lookup(
        ui: Tenang, http: aiohttp.ClientSession, as_role: Login) -> None:
    await patient(ui, http, "KB-BULK-1")
    b = await as_role("opa")
    for _ in range(2):
        status, preview, _ = await b.get(f"/bulk?status=failed&q={CARD}")
        assert status == 200 and 'id="bulk-confirm"' in preview
    entries = await views(ui, action=SEARCH_IDENTIFIER)
    assert [(e.actor, e.detail) for e in entries] == [
        ("opa", f"bulk dry run: q={SHOWN[CARD]}: 1 requests")]


async def test_an_auditor_finds_a_request_by_its_nik(
        ui: Tenang, http: aiohttp.ClientSession, as_role: Login) -> None:
    request_id = await patient(ui, http, "KB-SEARCH-2")
    b = await as_role("audi")
    _, page, _ = await b.get(f"/requests?q={NIK}")
    assert listed(page, request_id)
    status, text, _ = await b.get(f"/requests.csv?q={CARD}")
    assert status == 200 and request_id in text
    # Their full views are audited already: no lookup entry besides.
    assert await views(ui, action=SEARCH_IDENTIFIER) == []
    assert [e.detail for e in await views(ui, action=LIST_FULL)] == [
        f"ui log: 1 requests: {request_id}"]
