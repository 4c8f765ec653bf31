"""The hash chain on the audit page (/audit), over real HTTP: the last verification and
checkpoint shown to auditors and admins, "verify now" (CSRF, in the background, audited),
a broken chain named, a chain switched off ([audit] chain = false) said so, and no card
for the roles without the audit permission."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.store.chain import Break, Verification
from tests.admin_ui.conftest import Browser, bpjs_ui_config, submit
from tests.conftest import StartTenang, wait_until

Login = Callable[[str], Awaitable[Browser]]


def card(page: str) -> str:
    found = re.search(r'<section class="card" id="chain">(.*?)</section>', page, re.S)
    assert found, "no hash chain card"
    return found.group(1)


@pytest.mark.parametrize("name", ["audi", "adi"])
async def test_auditors_and_admins_see_the_chain_and_can_verify_it_now(
        ui: Tenang, as_role: Login, http: aiohttp.ClientSession, name: str) -> None:
    await submit(http, ui.gateway_url, b'{"kodebooking": "KB-CHAIN-1"}')
    b = await as_role(name)
    status, page, _ = await b.get("/audit")
    assert status == 200
    assert 'data-result="none"' in card(page) and 'data-checkpoint="none"' in card(page)

    status, _, resp = await b.post("/audit/verify")
    assert status == 303 and resp.headers["Location"] == "/audit?notice=verifying"
    shown = ""

    async def verified() -> bool:
        nonlocal shown
        _, shown, _ = await b.get("/audit")
        return 'data-result="intact"' in card(shown)

    await wait_until(verified, what="the verification's result on the page")
    last = await ui.backend.chain.last_verification()
    assert last is not None and last.ok and last.head_seq >= 2  # the request, its state
    assert f'data-seq="{last.head_seq}"' in card(shown)
    head = await ui.backend.chain.chain_head()
    # Who started it is in the audit trail (and so in the chain).
    entries = await ui.backend.audit.audit_entries(limit=10)
    assert any(e.action == "chain_verify" and e.actor == name for e in entries)

    taken = await ui.backend.chain.checkpoint(head.seq + 0.5, "daily")
    _, page, _ = await b.get("/audit")
    assert taken.head.hex() in card(page) and f'data-checkpoint="{taken.seq}"' in card(page)


async def test_a_broken_chain_is_shown_with_the_first_broken_record(
        ui: Tenang, as_role: Login) -> None:
    await ui.backend.chain.record_verification(Verification(
        at=1_800_000_000.0, ok=False, head_seq=41, checked=41,
        broken=Break(42, "request", "01KXAMPLE", "record changed since it was stored")))
    b = await as_role("audi")
    _, page, _ = await b.get("/audit")
    assert 'data-result="broken"' in card(page)
    assert "seq 42: request 01KXAMPLE: record changed since it was stored" in card(page)


async def test_verify_now_needs_the_csrf_token(ui: Tenang, as_role: Login) -> None:
    b = await as_role("audi")
    status, _, _ = await b.post("/audit/verify", csrf=False)
    assert status == 403
    assert await ui.backend.chain.last_verification() is None


@pytest.mark.parametrize("name", ["vera", "opa"])
async def test_viewers_and_operators_neither_see_nor_run_it(
        ui: Tenang, as_role: Login, name: str) -> None:
    b = await as_role(name)
    status, page, _ = await b.get("/audit")
    assert status == 403 and 'id="chain"' not in page
    status, _, _ = await b.post("/audit/verify")
    assert status == 403
    assert await ui.backend.chain.last_verification() is None


async def test_a_chain_switched_off_is_said_on_the_card_and_in_the_trail(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        browsers: Callable[[str], Browser]) -> None:
    on = await start_tenang(bpjs_ui_config(tmp_path, bpjs_sim), relay_enabled=False)
    b = browsers(on.admin_url)
    assert await b.login("audi") == 303
    _, page, _ = await b.get("/audit")
    assert 'id="chain-off"' not in card(page)
    await on.stop()

    off = await start_tenang(bpjs_ui_config(tmp_path, bpjs_sim, audit={"chain": False}),
                             relay_enabled=False)
    b = browsers(off.admin_url)
    assert await b.login("audi") == 303
    status, page, _ = await b.get("/audit")
    assert status == 200
    shown = re.search(r'<p class="bad" id="chain-off">(.*?)</p>', card(page), re.S)
    # The UI's default language is Indonesian.
    assert shown and "MATI sejak" in shown.group(1) and "WIB" in shown.group(1)
    assert "[audit] chain = false" in shown.group(1)
    assert "rantai hash dimatikan" in page  # the switch's row in the audit trail
