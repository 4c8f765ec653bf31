"""The request log's full views, audited for what they disclose, over real HTTP: a page
polled again (the UI refreshes itself, scripts poll the API) writes no new ``list_full``
entry; a request newly on the page does, naming it alone. And a viewer's or operator's
search (``q``) matches what they are shown: a full NIK or card number typed into it finds
nothing, though the booking code still finds the request."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.lifecycle import Status
from proxy.ops.disclosure import LIST_FULL
from tests.admin_ui.conftest import Browser, submit
from tests.admin_ui.helpers import settle
from tests.admin_ui.test_patient_data import CARD, NIK, PHONE, api_json, views
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
async def test_a_masked_role_cannot_find_a_request_by_an_identifier_it_is_not_shown(
        ui: Tenang, http: aiohttp.ClientSession, as_role: Login, name: str) -> None:
    request_id = await patient(ui, http, "KB-SEARCH-1")
    b = await as_role(name)
    for term in (NIK, CARD, PHONE, NIK[3:], CARD[:-2]):
        _, page, _ = await b.get(f"/requests?q={term}")
        assert not listed(page, request_id), f"found by {term}"
        _, doc = await api_json(b, f"/api/v1/requests?q={term}")
        assert doc["items"] == [], f"found by {term} in the API"
    # What they are shown still finds it: the booking code, the last four digits.
    for term in ("KB-SEARCH-1", NIK[-4:]):
        _, page, _ = await b.get(f"/requests?q={term}")
        assert listed(page, request_id), f"not found by {term}"
        _, doc = await api_json(b, f"/api/v1/requests?q={term}")
        assert [i["id"] for i in doc["items"]] == [request_id]


async def test_an_auditor_finds_a_request_by_its_nik(
        ui: Tenang, http: aiohttp.ClientSession, as_role: Login) -> None:
    request_id = await patient(ui, http, "KB-SEARCH-2")
    b = await as_role("audi")
    _, page, _ = await b.get(f"/requests?q={NIK}")
    assert listed(page, request_id)
