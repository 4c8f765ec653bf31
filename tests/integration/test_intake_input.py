"""Valid-but-nasty input at intake (issue 10.3): bodies Tenang cannot key get a clear
400 naming the problem and nothing is stored; bodies a route needs nothing from are
stored as the bytes they are. Never a 500, never "may not have been stored, retry"."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import targets
from tests.conftest import StartTenang, make_config
from tests.integration.test_intake import db_rows, stored
from tests.signing import bpjs_headers

DEEP = b'{"kodebooking":"KB-DEEP","taskid":1,"kodekelas":"VIP","koderuang":"R1","x":' \
    + b"[" * 50_000 + b"]" * 50_000 + b"}"
SURROGATE = b'{"kodebooking":"\\ud800","taskid":1,"kodekelas":"\\udfff","koderuang":"R1"}'

KEYED_ROUTES = [
    ("antrean", "/antreanrs", "/antreanrs/antrean/add"),
    ("antrean", "/antreanrs", "/antreanrs/antrean/updatewaktu"),
    ("aplicare", "/aplicaresws", "/aplicaresws/rest/bed/update/0301R001"),
]


def config_for(tmp_path: Path, url: str, preset: str, prefix: str) -> Any:
    return make_config(tmp_path, url, name=preset, prefix=prefix, target=url + prefix,
                       preset=preset)


@pytest.mark.parametrize(("preset", "prefix", "path"), KEYED_ROUTES)
@pytest.mark.parametrize(("body", "problem"), [
    (DEEP, "nested too deeply"), (SURROGATE, "unpaired UTF-16 surrogate")])
async def test_unkeyable_body_is_refused_with_the_reason_and_not_stored(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, preset: str, prefix: str, path: str, body: bytes,
        problem: str) -> None:
    tenang = await start_tenang(config_for(tmp_path, bpjs_sim.url, preset, prefix),
                                relay_enabled=False)
    async with http.post(tenang.gateway_url + path, data=body,
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        doc = await resp.json()
    meta = doc["metadata"]
    assert meta["code"] == 400 and problem in meta["message"]
    assert "not stored" in meta["message"] and "retry" not in meta["message"]
    assert doc["response"] is None
    assert db_rows(tmp_path) == []


async def test_surrogate_refusal_names_the_field(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    async with http.post(tenang.gateway_url + "/antreanrs/antrean/add",
                         data=SURROGATE) as resp:
        assert resp.status == 400
        assert "'kodebooking'" in (await resp.json())["metadata"]["message"]


@pytest.mark.parametrize("body", [
    # The surrogate is not in a key field: the body is stored as the bytes it is.
    b'{"kodebooking":"KB-SURR","nama":"\\ud800"}',
    # Not UTF-8 at all: not keyed, kept as bytes (BPJS judges it).
    b'{"kodebooking":"\xff\xfe"}',
])
async def test_nasty_but_keyable_bodies_are_stored_as_bytes(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, body: bytes) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    async with http.post(tenang.gateway_url + "/antreanrs/antrean/add", data=body) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    assert bytes(stored(tmp_path, request_id)["body"]) == body


async def test_deep_body_on_a_route_that_needs_no_key_is_stored_as_bytes(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    async with http.post(tenang.gateway_url + "/antreanrs/jadwaldokter/updatejadwaldokter",
                         data=DEEP) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    assert bytes(stored(tmp_path, request_id)["body"]) == DEEP


# --- encoded path tricks (issue 10.9) -----------------------------------------------------


async def send_raw(gateway_url: str, method: bytes, target: bytes,
                   body: bytes = b"{}") -> tuple[int, Any]:
    """A signed request whose request-target is written by hand (aiohttp's client would
    normalise it); the status and the JSON answer."""
    host, port = gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = b"".join(f"{k}: {v}\r\n".encode() for k, v in bpjs_headers().items())
    writer.write(method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 + head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


TRICKS = [
    (b"/antreanrs/%252e%252e/x", "double percent-encoding"),
    (b"/antreanrs/antrean/%252E%252e%252fadd", "double percent-encoding"),
    (b"/antreanrs/%252fetc/passwd", "double percent-encoding"),
    (b"/antreanrs/antrean%255cadd", "double percent-encoding"),
    (b"/antreanrs/%u002e%u002e/x", "%u escapes"),
    (b"/antreanrs/antrean/add%00.json", "NUL bytes"),
    (b"/antreanrs/antrean/add;x=..;/", "path parameters"),
    (b"/antreanrs/antrean;jsessionid=1/add", "path parameters"),
    (b"/antreanrs/antrean\\add", "backslashes"),
    (b"/antreanrs/antrean%5Cadd", "backslashes"),
    (b"/antreanrs/%c0%ae%c0%ae/x", "overlong UTF-8"),
    (b"/antreanrs/%C1%9c/x", "overlong UTF-8"),
    (b"/antreanrs/%e0%80%ae/x", "overlong UTF-8"),
    (b"/antreanrs/%ef%bc%8e%ef%bc%8e/x", "look-alike dots or slashes"),
    (b"/antreanrs/%E2%80%A4%E2%80%A4/x", "look-alike dots or slashes"),
    (b"/antreanrs/antrean%ef%bc%8fadd", "look-alike dots or slashes"),
]


@pytest.mark.parametrize(("target", "problem"), TRICKS)
@pytest.mark.parametrize("method", [b"POST", b"GET"])
async def test_encoded_path_tricks_are_refused_on_bpjs_presets(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang, method: bytes,
        target: bytes, problem: str) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    status, doc = await send_raw(tenang.gateway_url, method, target)
    assert status == 400
    assert doc["metadata"]["code"] == 400 and problem in doc["metadata"]["message"]
    assert doc["response"] is None
    assert db_rows(tmp_path) == []
    assert targets(bpjs_sim) == []  # nothing went anywhere


async def test_plain_bpjs_paths_and_queries_with_escapes_still_pass(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    status, _ = await send_raw(tenang.gateway_url, b"POST",
                               b"/antreanrs/antrean/add?catatan=50%2541;x%00",
                               b'{"kodebooking":"KB-PLAIN"}')
    assert status == 202  # the query is data: only the path is judged


async def test_a_generic_upstream_keeps_its_path_parameters(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, preset="generic"),
                                relay_enabled=False)
    status, _ = await send_raw(tenang.gateway_url, b"POST", b"/antreanrs/orders;v=2/add")
    assert status == 202


# --- the result lookup on the SIMRS port -------------------------------------------------


async def lookup_raw(gateway_url: str, target: bytes, head: bytes) -> tuple[int, Any]:
    host, port = gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head
                 + b"\r\n")
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("head", [
    b"Authorization: Bearer \xff\xfe\r\n",
    b"Authorization: Bearer results-token\r\nX-cons-id: 12345\r\nX-timestamp: 17\xff\r\n"
    b"X-signature: abc\r\n",
    b"Authorization: Bearer results-token\r\nX-cons-id: 12345\r\nX-timestamp: 1700000000"
    b"\r\nX-signature: \xc3\xa9\xff\r\n",
])
async def test_a_lookup_with_header_bytes_that_are_not_utf8_is_401(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, head: bytes) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, server={"results_token_env": "RESULTS_TOKEN"},
                      env={"RESULTS_TOKEN": "results-token"})
    tenang = await start_tenang(cfg, relay_enabled=False)
    async with http.post(tenang.gateway_url + "/antreanrs/antrean/add",
                         data=b'{"kodebooking":"KB-LOOKUP"}') as resp:
        request_id = resp.headers["X-Tenang-Request-Id"]
    status, doc = await lookup_raw(tenang.gateway_url,
                                   f"/_tenang/requests/{request_id}".encode(), head)
    assert status == 401
    assert doc["metadata"]["code"] == 401 and doc["response"] is None


@pytest.mark.parametrize(("name", "value"), [
    (b"X-signature", b"\x80"), (b"X-timestamp", b"\xc2\xb2"), (b"X-timestamp", b"17\xff"),
    (b"X-cons-id", b"123\xff")])
async def test_signature_headers_that_are_not_ascii_get_401(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang, name: bytes,
        value: bytes) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    signed = {k.encode(): v.encode() for k, v in bpjs_headers().items()}
    signed[name] = value
    head = b"".join(k + b": " + v + b"\r\n" for k, v in signed.items())
    host, port = tenang.gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"kodebooking":"KB-SIG"}'
    writer.write(b"POST /antreanrs/antrean/add HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 + head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert db_rows(tmp_path) == []
