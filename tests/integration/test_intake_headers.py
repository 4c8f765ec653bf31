"""Headers (issue 10.7): an upstream gets only its allowlist (the preset's plus
``forward_headers``); only those are stored (X-signature never), and the BPJS
simulator's log shows what really arrived, queued, live and passed through."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import booking
from tests.conftest import StartTenang, admin_headers, make_config
from tests.integration.test_intake import delivered, header, stored, stored_headers

# What a SIMRS behind a PHP front end or a reverse proxy also sends.
STRAY = {
    "Cookie": "PHPSESSID=9a8b7c6d5e4f3a2b1c0d",
    "X-Api-Key": "simrs-internal-key-123456",
    "X-Original-URL": "/admin/delete-everything",
    "X-Rewrite-URL": "/admin/delete-everything",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-For": "10.0.0.7",
    "X-Rs-Kode": "RS0001",
}
BPJS = {"user_key": "0123456789abcdef0123456789abcdef", "Content-Type": "application/json",
        "Accept": "application/json", "User-Agent": "Khanza/2024"}


def names(headers: dict[str, str] | list[tuple[str, str]]) -> set[str]:
    pairs = headers.items() if isinstance(headers, dict) else headers
    return {k.lower() for k, _ in pairs}


def assert_only_bpjs_headers(received: dict[str, str] | list[tuple[str, str]]) -> None:
    got = names(received)
    assert not got & {k.lower() for k in STRAY}, got
    assert {"user_key", "x-cons-id", "x-timestamp", "content-type", "accept",
            "user-agent"} <= got


async def test_a_queued_write_stores_and_replays_only_the_bpjs_headers(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         headers={**STRAY, **BPJS}, data=json.dumps(booking("KB-HDR"))) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    kept = stored_headers(stored(tmp_path, request_id))
    assert names(kept) == {"user_key", "x-cons-id", "x-timestamp", "content-type", "accept",
                           "user-agent"}
    await delivered(http, tenang.admin_url, request_id)
    [entry] = bpjs_sim.state.log
    assert_only_bpjs_headers(entry["headers"])
    assert header(entry["headers"], "user_key") == [BPJS["user_key"]]
    assert header(entry["headers"], "X-signature")  # re-signed for the attempt


async def test_a_passthrough_read_forwards_only_the_bpjs_headers(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    async with http.get(f"{tenang.gateway_url}/antreanrs/ref/poli",
                        headers={**STRAY, **BPJS}) as resp:
        assert resp.status == 200
    [entry] = bpjs_sim.state.log
    assert_only_bpjs_headers(entry["headers"])
    assert header(entry["headers"], "X-signature")  # the SIMRS's own, live


async def test_a_live_deadline_send_forwards_only_the_bpjs_headers(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url,
                      routes=[{"match": "POST antrean/add", "mode": "deadline"}])
    tenang = await start_tenang(cfg)
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         headers={**STRAY, **BPJS}, data=b'{"kodebooking":"KB-LIVE"}') as resp:
        assert resp.status == 200  # BPJS's own answer, live
        request_id = resp.headers["X-Tenang-Request-Id"]
    [entry] = bpjs_sim.state.log
    assert_only_bpjs_headers(entry["headers"])
    kept = stored_headers(stored(tmp_path, request_id))
    assert "x-signature" not in names(kept) and not names(kept) & {k.lower() for k in STRAY}


async def test_forward_headers_adds_to_the_preset_list(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, forward_headers=["x-rs-kode"])
    tenang = await start_tenang(cfg)
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         headers={**STRAY, **BPJS}, data=json.dumps(booking("KB-FWD"))) as resp:
        request_id = resp.headers["X-Tenang-Request-Id"]
    assert header(stored_headers(stored(tmp_path, request_id)), "X-Rs-Kode") == ["RS0001"]
    await delivered(http, tenang.admin_url, request_id)
    [entry] = bpjs_sim.state.log
    assert header(entry["headers"], "X-Rs-Kode") == ["RS0001"]
    assert header(entry["headers"], "Cookie") == []


async def test_a_generic_upstream_forwards_authorization_but_not_cookies(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url,
                                            preset="generic"))
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         data=json.dumps(booking("KB-GENERIC")), headers={
            **STRAY, "Authorization": "Bearer upstream-token-0123456789"}) as resp:
        request_id = resp.headers["X-Tenang-Request-Id"]
    await delivered(http, tenang.admin_url, request_id)
    [entry] = bpjs_sim.state.log
    assert header(entry["headers"], "Authorization") == ["Bearer upstream-token-0123456789"]
    assert not names(entry["headers"]) & {k.lower() for k in STRAY}
    # Shown masked: a credential whatever its name.
    async with http.get(f"{tenang.admin_url}/api/v1/requests/{request_id}",
                        headers=admin_headers()) as resp:
        shown = dict((await resp.json())["headers"])
    assert shown["Authorization"] == "Bear…"
    assert "upstream-token" not in json.dumps(shown)
