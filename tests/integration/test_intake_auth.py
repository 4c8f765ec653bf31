"""Acceptance of issue 11.1 / 10.2 (intake half) over real HTTP against the BPJS simulator:
a call without the SIMRS's own valid BPJS credentials gets 401, nothing is stored (the
SQLite file) and nothing reaches BPJS (the simulator's log); a correct one goes through.

These tests use a plain ClientSession (not the signing ``http`` fixture): each one says
exactly which headers it sends.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from proxy.bpjs.crypto import decrypt_response
from proxy.bpjs.signature import sign
from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import booking, bpjs_config, today
from tests.conftest import StartTenang, admin_headers, make_config, wait_until
from tests.integration.metrics_scrape import scrape, v

ADD = "/antreanrs/antrean/add"
PESERTA = "/vclaim-rest/Peserta/nokartu/0001234567890/tglSEP/{day}"
SEP_INSERT = "/vclaim-rest/SEP/2.0/insert"
POLI = "/vclaim-rest/referensi/poli/INT"


@pytest.fixture
async def plain() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def stored_rows(tmp_path: Path) -> int:
    with closing(sqlite3.connect(tmp_path / "tenang.db")) as db:
        return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


def forged(sim: RunningSimulator, service: str, method: str, how: str) -> dict[str, str]:
    """A header set broken in one way (``how``), otherwise what a correct SIMRS sends."""
    if how == "stale timestamp":
        return sim.signed_headers(service, method=method, now=time.time() - 601)
    headers = sim.signed_headers(service, method=method)
    ts = headers["X-timestamp"]
    if how == "wrong secret":
        headers["X-signature"] = sign(sim.cons_id, "not-the-secret", ts)
    elif how == "missing signature":
        del headers["X-signature"]
    elif how == "no BPJS headers":
        headers = {"Content-Type": headers["Content-Type"]}
    elif how == "wrong cons id":
        headers["X-cons-id"] = "99999"
        headers["X-signature"] = sign("99999", sim.secret, ts)
    return headers


FAILURES = {  # how -> words the 401's message must contain
    "wrong secret": "X-signature tidak valid",
    "missing signature": "X-signature header is required",
    "no BPJS headers": "X-cons-id, X-timestamp, X-signature",
    "wrong cons id": "X-cons-id '99999' tidak sesuai",
    "stale timestamp": "X-timestamp kedaluwarsa",
}
CASES = [  # service, method, path, body
    pytest.param("antrean", "POST", ADD, "booking", id="queued-write"),
    pytest.param("vclaim", "GET", PESERTA, None, id="passthrough-read"),
    pytest.param("vclaim", "POST", SEP_INSERT, "sep", id="deadline-write"),
]


def body_for(kind: str | None) -> bytes | None:
    if kind == "booking":
        return json.dumps(booking("KB-AUTH-1")).encode()
    if kind == "sep":
        return json.dumps({"request": {"t_sep": {"noKartu": "0001112223331",
                                                 "tglSep": today()}}}).encode()
    return None


@pytest.mark.parametrize("how", list(FAILURES))
@pytest.mark.parametrize(("service", "method", "path", "body"), CASES)
async def test_a_call_without_valid_credentials_gets_401_and_goes_nowhere(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession, service: str, method: str, path: str, body: str | None,
        how: str) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, service))
    async with plain.request(method, tenang.gateway_url + path.format(day=today()),
                             data=body_for(body),
                             headers=forged(bpjs_sim, service, method, how)) as resp:
        assert resp.status == 401
        doc = await resp.json(content_type=None)
    meta = doc["metaData" if service == "vclaim" else "metadata"]
    assert str(meta["code"]) == "401"
    assert FAILURES[how] in meta["message"]
    assert " / " in meta["message"]  # Indonesian / English
    assert doc["response"] is None
    assert stored_rows(tmp_path) == 0
    assert await bpjs_sim.log() == []


async def test_refusals_are_counted_by_reason_in_the_metrics(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim))
    for how in ("wrong secret", "wrong secret", "stale timestamp", "no BPJS headers"):
        async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                              headers=forged(bpjs_sim, "antrean", "POST", how)) as resp:
            assert resp.status == 401
    samples = await scrape(plain, tenang)

    def refused(reason: str) -> float:
        return v(samples, "tenang_intake_refused_total", upstream="antrean", reason=reason)

    assert (refused("signature"), refused("timestamp"), refused("missing-header")) == (2, 1, 1)


async def test_a_correctly_signed_write_is_queued_and_delivered(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim))
    async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                          headers=bpjs_sim.signed_headers("antrean", method="POST")) as resp:
        assert resp.status == 202
    assert stored_rows(tmp_path) == 1

    async def delivered() -> bool:
        return len(await bpjs_sim.log(path_contains="antrean/add", outcome="ok")) == 1

    await wait_until(delivered, what="the booking to reach the simulator")


async def test_a_correctly_signed_read_gets_the_upstream_answer(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, "vclaim"))
    headers = bpjs_sim.signed_headers("vclaim")
    async with plain.get(tenang.gateway_url + PESERTA.format(day=today()),
                         headers=headers) as resp:
        assert resp.status == 200
        assert "X-Tenang-Fallback" not in resp.headers
        doc = await resp.json(content_type=None)
    assert doc["metaData"]["code"] == "200"
    peserta = decrypt_response(doc["response"], bpjs_sim.cons_id, bpjs_sim.secret,
                               headers["X-timestamp"])
    assert peserta["peserta"]["noKartu"] == "0001234567890"
    assert len(await bpjs_sim.log(path_contains="Peserta")) == 1
    assert stored_rows(tmp_path) == 0  # reads are not stored


async def test_a_stale_cache_answer_is_not_given_to_an_unsigned_caller(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, "vclaim", routes=[
        {"match": "GET referensi/**", "cache_ttl_s": 3600}]))
    url = tenang.gateway_url + POLI
    async with plain.get(url, headers=bpjs_sim.signed_headers("vclaim")) as resp:
        assert resp.status == 200  # now cached
    await bpjs_sim.set_mode("down", down_style="html")
    for how in FAILURES:
        async with plain.get(url, headers=forged(bpjs_sim, "vclaim", "GET", how)) as resp:
            assert resp.status == 401, how
            assert "X-Tenang-Cache" not in resp.headers
            assert "poli" not in (await resp.text()).lower()
    signed = bpjs_sim.signed_headers("vclaim")
    async with plain.get(url, headers=signed) as resp:  # the signed caller still gets it
        assert resp.status == 200 and resp.headers["X-Tenang-Cache"].startswith("stale")
    assert len(await bpjs_sim.log(path_contains="referensi")) == 2  # no 401 case went on


async def test_a_call_without_user_key_gets_400_naming_the_header(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim))
    headers = bpjs_sim.signed_headers("antrean", method="POST")
    del headers["user_key"]
    async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                          headers=headers) as resp:
        assert resp.status == 400
        doc = await resp.json(content_type=None)
    assert doc["metadata"]["code"] == 400
    assert "user_key header is required" in doc["metadata"]["message"]
    assert stored_rows(tmp_path) == 0
    assert await bpjs_sim.log() == []


async def test_with_user_key_env_a_call_without_user_key_is_accepted(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, user_key_env="UK",
                                            env={"UK": "sim-user-key-0001",
                                                 "TENANG_TEST_BPJS_SECRET": bpjs_sim.secret}))
    headers = bpjs_sim.signed_headers("antrean", method="POST")
    del headers["user_key"]
    async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                          headers=headers) as resp:
        assert resp.status == 202
    assert stored_rows(tmp_path) == 1


async def test_unsigned_replays_still_checks_cons_id_and_timestamp(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, re_sign=False))
    for how in ("wrong cons id", "stale timestamp", "missing signature"):
        async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                              headers=forged(bpjs_sim, "antrean", "POST", how)) as resp:
            assert resp.status == 401, how
    assert stored_rows(tmp_path) == 0
    # Without the secret the signature itself cannot be verified.
    async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                          headers=forged(bpjs_sim, "antrean", "POST", "wrong secret")) as resp:
        assert resp.status == 202


async def test_a_refused_call_with_a_body_leaves_the_connection_usable(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang) -> None:
    """The refusal comes before the body is read: the next request on the same
    keep-alive connection must still be framed right."""
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim), relay_enabled=False)
    host, port = tenang.gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = body_for("booking") or b""

    def raw(headers: dict[str, str]) -> bytes:
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (f"POST {ADD} HTTP/1.1\r\nHost: x\r\n{lines}Content-Length: {len(body)}"
                "\r\n\r\n").encode() + body

    writer.write(raw(forged(bpjs_sim, "antrean", "POST", "wrong secret")) +
                 raw(bpjs_sim.signed_headers("antrean", method="POST")))
    await writer.drain()
    statuses = []
    for _ in range(2):
        head = await reader.readuntil(b"\r\n\r\n")
        statuses.append(int(head.split(b" ")[1]))
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    writer.close()
    assert statuses == [401, 202]
    assert stored_rows(tmp_path) == 1


async def test_a_generic_upstream_without_a_secret_checks_no_credentials(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    """Documented: no BPJS identity to check; allow_from is what limits it."""
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, preset="generic",
                                            cons_id=None, secret_env=None))
    async with plain.post(tenang.gateway_url + "/antreanrs/anything", data=b"{}") as resp:
        assert resp.status == 202


# --- server.allow_from on both ports ------------------------------------------------------


async def test_allow_from_refuses_other_clients_on_both_ports(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim,
                                            server={"allow_from": ["10.99.0.0/16"]}))
    async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                          headers=bpjs_sim.signed_headers("antrean", method="POST")) as resp:
        assert resp.status == 403
        doc = await resp.json(content_type=None)
    assert doc["metadata"]["code"] == 403 and doc["metaData"]["code"] == "403"
    assert "127.0.0.1 is not allowed (server.allow_from)" in doc["metadata"]["message"]
    for path in ("/healthz", "/api/v1/summary", "/", "/metrics"):
        async with plain.get(tenang.admin_url + path, headers=admin_headers()) as resp:
            assert resp.status == 403, path
            assert "server.allow_from" in (await resp.json())["error"]
    assert stored_rows(tmp_path) == 0
    assert await bpjs_sim.log() == []


async def test_allow_from_lets_listed_clients_through_on_both_ports(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        plain: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(
        tmp_path, bpjs_sim, server={"allow_from": ["10.99.0.0/16", "127.0.0.0/8"]}))
    async with plain.post(tenang.gateway_url + ADD, data=body_for("booking"),
                          headers=bpjs_sim.signed_headers("antrean", method="POST")) as resp:
        assert resp.status == 202
    async with plain.get(tenang.admin_url + "/api/v1/summary",
                         headers=admin_headers()) as resp:
        assert resp.status == 200
