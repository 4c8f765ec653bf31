"""Credential-like headers are masked in every view (issue 10.7): rows stored before
intake kept only its allowlist may hold a SIMRS's Cookie or X-Api-Key."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import aiohttp

from proxy.app import Tenang
from proxy.ids import next_request_id
from proxy.store.records import NewRequest
from tests.admin_ui.conftest import Browser
from tests.conftest import admin_headers
from tests.store_support import enqueue

SECRETS = {"Cookie": "PHPSESSID=9a8b7c6d5e4f3a2b1c0d", "X-Api-Key": "simrs-key-5544332211",
           "user_key": "0123456789abcdef0123456789abcdef",
           "X-Auth-Token": "tok-99887766554433"}


async def old_row(ui: Tenang) -> str:
    now = time.time()
    request_id = next_request_id(now)
    await enqueue(ui.backend.intake, NewRequest(
        id=request_id, upstream="antrean", method="POST", path="/antreanrs/antrean/add",
        query="", headers=(*SECRETS.items(), ("X-cons-id", "12345")),
        body=b'{"kodebooking":"KB-OLD"}', received_at=now, endpoint="antrean.add"))
    return request_id


async def test_api_and_detail_page_mask_every_credential_like_header(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]],
        http: aiohttp.ClientSession) -> None:
    request_id = await old_row(ui)
    async with http.get(f"{ui.admin_url}/api/v1/requests/{request_id}",
                        headers=admin_headers()) as resp:
        text = await resp.text()
        shown = dict((await resp.json())["headers"])
    b = await as_role("opa")
    _, page, _ = await b.get(f"/requests/{request_id}")
    for name, value in SECRETS.items():
        assert value[4:] not in text, f"{name} shown by the API"
        assert value[4:] not in page, f"{name} shown on the detail page"
        assert shown[name] == value[:4] + "…"
    assert shown["X-cons-id"] == "12345"  # an identifier, not a secret
    auditor = await as_role("audi")
    status, csv_text, _ = await auditor.get("/requests.csv")
    assert status == 200 and request_id in csv_text
    assert not any(value[4:] in csv_text for value in SECRETS.values())
