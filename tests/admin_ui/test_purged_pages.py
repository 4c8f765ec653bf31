"""Requests retention purged, in the admin UI over real HTTP: the detail page of one
whose bodies were dropped says so where the body and BPJS's answers were (and offers no
retry: it could not be sent again); the page of one whose row was deleted answers 410
with when, instead of a bare 404; the audit page marks entries about purged requests.
The purge is the one `tenang purge` and the daily job run (``Purger``), its clock moved
past the retention period."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.config_ops import RetentionConfig
from proxy.lifecycle import Status
from proxy.ops.retention import DAY_S, Purger
from proxy.store.records import PurgeKind
from tests.admin_ui.conftest import Browser, submit
from tests.admin_ui.helpers import settle
from tests.bpjs_support import booking

NIK = "3201012345678901"
ANSWER = json.dumps({"metadata": {"code": 201, "message": "Data tidak valid"},
                     "response": {"nik": NIK}}).encode()
Login = Callable[[str], Awaitable[Browser]]


async def purge(ui: Tenang, after_days: float) -> dict[PurgeKind, int]:
    """A purge run ``after_days`` from now (bodies after 30 days, rows after 365)."""
    config = RetentionConfig(bodies_after_days=30, rows_after_days=365)
    purger = Purger(ui.backend.retention, config, audit=ui.backend.audit,
                    clock=lambda: time.time() + after_days * DAY_S)
    return (await purger.run()).counts


@pytest.fixture
async def failed(ui: Tenang, http: aiohttp.ClientSession) -> str:
    """A failed antrean/add naming a patient, with BPJS's refusal."""
    request_id = await submit(http, ui.gateway_url, json.dumps(booking("KB-PURGE-1")))
    await settle(ui.backend, request_id, Status.FAILED, response=ANSWER)
    return request_id


async def english(as_role: Login, name: str) -> Browser:
    b = await as_role(name)
    await b.get("/lang/en?next=/")
    return b


@pytest.mark.parametrize("name", ["opa", "adi"])
async def test_a_request_whose_bodies_were_purged_says_so(
        ui: Tenang, as_role: Login, failed: str, name: str) -> None:
    b = await english(as_role, name)
    _, before, _ = await b.get(f"/requests/{failed}")
    assert 'id="request-body"' in before and 'id="retry"' in before

    assert (await purge(ui, 31))[PurgeKind.BODIES] == 1
    status, page, _ = await b.get(f"/requests/{failed}")
    assert status == 200
    assert 'id="body-purged"' in page and "Body purged by retention on" in page
    assert 'id="request-body"' not in page and 'id="purged-at"' in page
    assert "(BPJS answer purged by retention)" in page and "(no answer)" not in page
    assert 'id="retry"' not in page  # nothing left to send
    # The body is gone, not hidden (the booking code stays: it is metadata, the key).
    assert "dr. Andi" in before and "dr. Andi" not in page and NIK not in page
    assert "Data tidak valid" not in page  # so is BPJS's answer


async def test_a_request_whose_row_was_purged_answers_410_and_says_when(
        ui: Tenang, as_role: Login, failed: str) -> None:
    auditor = await english(as_role, "audi")
    _, _, _ = await auditor.get(f"/requests/{failed}")  # a full view: audited, by id
    counts = await purge(ui, 400)
    assert counts == {PurgeKind.BODIES: 1, PurgeKind.ROWS: 1}

    status, page, _ = await auditor.get(f"/requests/{failed}")
    assert status == 410
    assert "This request was purged by retention on" in page and "rows_after_days" in page
    assert "tombstones" in page and f'href="/audit?target={failed}"' in page
    status, audit, _ = await auditor.get(f"/audit?target={failed}")
    assert status == 200 and 'class="muted purged-tag"' in audit and "purged " in audit

    viewer = await english(as_role, "vera")
    status, page, _ = await viewer.get(f"/requests/{failed}")
    assert status == 410 and 'id="purged-audit"' not in page  # no audit page for them
    # An id that never was is still not found.
    status, page, _ = await viewer.get("/requests/01KZZZZZZZZZZZZZZZZZZZZZZZ")
    assert status == 404 and "purged" not in page


async def test_the_indonesian_pages_say_it_too(ui: Tenang, as_role: Login,
                                               failed: str) -> None:
    await purge(ui, 31)
    b = await as_role("opa")  # Bahasa Indonesia: the default
    _, page, _ = await b.get(f"/requests/{failed}")
    assert "Isi dihapus oleh retensi pada" in page
    await purge(ui, 400)
    status, page, _ = await b.get(f"/requests/{failed}")
    assert status == 410 and "Permintaan ini dihapus oleh retensi pada" in page
