"""Result lookup on the SIMRS port (GET /_tenang/requests/{id}) over real HTTP, with
Tenang in front of the BPJS simulator. The relay is driven by ``drain()`` so the
"not final yet" answer (code 202) is observed deterministically."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.bpjs.crypto import decrypt_response
from proxy.bpjs.simulator.client import DEFAULT_USER_KEY
from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import SECRET_ENV, booking
from tests.conftest import admin_headers, make_config

RESULTS_TOKEN_ENV = "TENANG_TEST_RESULTS_TOKEN"
POLI_ROUTE = {"match": "GET ref/poli", "mode": "queue"}


def antrean_config(tmp_path: Path, sim: RunningSimulator, **extra: Any) -> Any:
    env: dict[str, str] = {SECRET_ENV: sim.secret, **extra.pop("env", {})}
    return make_config(tmp_path, sim.url, name="antrean", prefix="/antreanrs",
                       target=sim.url + "/antreanrs", preset="antrean", cons_id=sim.cons_id,
                       secret_env=SECRET_ENV, env=env, routes=[POLI_ROUTE], **extra)


async def submit(http: aiohttp.ClientSession, sim: RunningSimulator, tenang: Tenang,
                 method: str, path: str, body: Any = None) -> str:
    headers = sim.signed_headers("antrean", method=method)
    data = None if body is None else json.dumps(body).encode()
    async with http.request(method, tenang.gateway_url + path, data=data,
                            headers=headers) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["X-Tenang-Request-Id"]


async def lookup(http: aiohttp.ClientSession, tenang: Tenang, request_id: str,
                 headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    async with http.get(f"{tenang.gateway_url}/_tenang/requests/{request_id}",
                        headers=headers or {}) as resp:
        text = await resp.text()
        return resp.status, json.loads(text), text


async def drain(tenang: Tenang) -> None:
    assert tenang.relay is not None
    await tenang.relay.drain()


@pytest.fixture
async def tenang(tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any) -> Tenang:
    started: Tenang = await start_tenang(antrean_config(tmp_path, bpjs_sim),
                                         relay_enabled=False)
    return started


async def test_antrean_add_is_202_while_pending_then_the_bpjs_envelope(
        tenang: Tenang, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    request_id = await submit(http, bpjs_sim, tenang, "POST", "/antreanrs/antrean/add",
                              booking("KB-RESULT"))
    status, doc, text = await lookup(http, tenang, request_id)
    assert status == 202
    assert doc["metadata"]["code"] == 202  # Antrean's numeric code, its own spelling
    assert "pending" in doc["metadata"]["message"]
    assert doc["response"] is None
    assert doc["tenang"]["id"] == request_id
    assert doc["tenang"]["status"] == "pending"
    assert doc["tenang"]["attempts"] == 0
    assert doc["tenang"]["endpoint"] == "antrean.add"
    assert DEFAULT_USER_KEY not in text  # stored headers are never echoed

    await drain(tenang)
    status, doc, text = await lookup(http, tenang, request_id)
    assert status == 200
    async with http.get(f"{tenang.admin_url}/api/v1/requests/{request_id}",
                        headers=admin_headers()) as resp:
        stored_answer = json.loads((await resp.json())["last_response"])
    assert stored_answer["metadata"]["code"] == 200
    assert {k: v for k, v in doc.items() if k != "tenang"} == stored_answer
    assert doc["tenang"]["status"] == "succeeded"
    assert doc["tenang"]["attempts"] == 1
    assert doc["tenang"]["received_at"].endswith("Z")
    assert set(doc["tenang"]) == {"id", "upstream", "endpoint", "status", "reason",
                                  "attempts", "received_at", "updated_at"}
    assert DEFAULT_USER_KEY not in text


async def test_signed_lookup_gets_the_answer_encrypted_for_its_own_timestamp(
        tenang: Tenang, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    request_id = await submit(http, bpjs_sim, tenang, "GET", "/antreanrs/ref/poli")
    await drain(tenang)

    status, plain, _ = await lookup(http, tenang, request_id)
    assert status == 200
    assert plain["metadata"]["code"] == 1
    assert isinstance(plain["response"], list) and plain["response"]  # stored decrypted

    # Signed minutes later than the original call: the key is the lookup's own timestamp.
    headers = bpjs_sim.signed_headers("antrean", now=time.time() + 120)
    status, signed, _ = await lookup(http, tenang, request_id, headers)
    assert status == 200
    assert isinstance(signed["response"], str)
    assert decrypt_response(signed["response"], bpjs_sim.cons_id, bpjs_sim.secret,
                            headers["X-timestamp"]) == plain["response"]
    assert bpjs_sim.decrypt(signed, headers) == plain["response"]  # as a client would
    assert signed["metadata"] == plain["metadata"]
    assert signed["tenang"]["status"] == "succeeded"


@pytest.mark.parametrize("tamper", ["signature", "cons_id"])
async def test_wrong_signature_is_401_with_an_envelope(
        tenang: Tenang, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession,
        tamper: str) -> None:
    request_id = await submit(http, bpjs_sim, tenang, "GET", "/antreanrs/ref/poli")
    await drain(tenang)
    headers = bpjs_sim.signed_headers("antrean")
    if tamper == "signature":
        headers["X-signature"] = "AAAA" + headers["X-signature"][4:]
    else:
        headers["X-cons-id"] = "99999"
    status, doc, text = await lookup(http, tenang, request_id, headers)
    assert status == 401
    assert doc["metadata"]["code"] == 401
    assert doc["response"] is None
    assert "tenang" not in doc
    assert "nmpoli" not in text


async def test_unknown_id_is_404_with_an_envelope(tenang: Tenang,
                                                 http: aiohttp.ClientSession) -> None:
    status, doc, _ = await lookup(http, tenang, "01NOSUCHREQUEST0000000000")
    assert status == 404
    # No upstream known: both spellings, so any client finds its own.
    assert doc["metaData"]["code"] == "404" and doc["metadata"]["code"] == 404
    assert doc["response"] is None


async def test_a_cancelled_request_gets_tenangs_own_final_envelope(
        tenang: Tenang, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    request_id = await submit(http, bpjs_sim, tenang, "POST", "/antreanrs/antrean/add",
                              booking("KB-CANCEL"))
    async with http.post(f"{tenang.admin_url}/api/v1/requests/{request_id}/cancel",
                         headers=admin_headers()) as resp:
        assert resp.status == 200
    status, doc, _ = await lookup(http, tenang, request_id)
    assert status == 200
    assert doc["metadata"]["code"] == 410
    assert "cancelled" in doc["metadata"]["message"]
    assert doc["tenang"]["status"] == "cancelled"


async def test_token_is_required_when_configured(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    config = antrean_config(tmp_path, bpjs_sim, server={"results_token_env": RESULTS_TOKEN_ENV},
                            env={RESULTS_TOKEN_ENV: "results-t0ken"})
    tenang = await start_tenang(config, relay_enabled=False)
    request_id = await submit(http, bpjs_sim, tenang, "POST", "/antreanrs/antrean/add",
                              booking("KB-TOKEN"))
    for given in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "results-t0ken"}):
        status, doc, _ = await lookup(http, tenang, request_id, given)
        assert status == 401, given
        assert doc["metadata"]["code"] == 401 and doc["response"] is None
    status, doc, _ = await lookup(http, tenang, request_id,
                                  {"Authorization": "Bearer results-t0ken"})
    assert status == 202
    assert doc["tenang"]["status"] == "pending"


async def test_other_methods_and_paths_are_not_the_lookup(
        tenang: Tenang, http: aiohttp.ClientSession) -> None:
    # Anything but GET falls through to intake, which refuses paths of no upstream.
    async with http.post(f"{tenang.gateway_url}/_tenang/requests/x") as resp:
        assert resp.status == 404
        assert "no upstream" in (await resp.json())["metadata"]["message"]
