"""Intake over real HTTP: what the SIMRS gets back, and what lands in the SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from yarl import URL

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from proxy.store.memory.intake import MemoryIntake
from proxy.store.records import NewRequest, StoredRequest
from tests.bpjs_support import applied, booking, make_sep
from tests.conftest import StartTenang, admin_headers, make_config, wait_until
from tests.signing import bpjs_headers
from tests.store_support import memory_with_intake


def with_upstream(config: Config, **changes: Any) -> Config:
    """``config`` with its one upstream changed (make_config cannot override the target)."""
    return dataclasses.replace(
        config, upstreams=(dataclasses.replace(config.upstreams[0], **changes),))


def db_rows(tmp_path: Path, sql: str = "SELECT * FROM requests",
            params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read the store's SQLite file through a connection of our own."""
    with closing(sqlite3.connect(tmp_path / "tenang.db")) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, params))


def stored(tmp_path: Path, request_id: str) -> sqlite3.Row:
    rows = db_rows(tmp_path, "SELECT * FROM requests WHERE id=?", (request_id,))
    assert len(rows) == 1, f"request {request_id} is not in the database"
    return rows[0]


def stored_headers(row: sqlite3.Row) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in json.loads(row["headers"])]


def header(headers: dict[str, str] | list[tuple[str, str]], name: str) -> list[str]:
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [v for k, v in pairs if k.lower() == name.lower()]


async def status_of(http: aiohttp.ClientSession, admin_url: str, request_id: str) -> str:
    async with http.get(f"{admin_url}/api/v1/requests/{request_id}",
                        headers=admin_headers()) as resp:
        assert resp.status == 200
        return str((await resp.json())["status"])


async def delivered(http: aiohttp.ClientSession, admin_url: str, request_id: str) -> None:
    async def done() -> bool:
        return await status_of(http, admin_url, request_id) == "succeeded"

    await wait_until(done, what=f"delivery of {request_id}")


async def test_write_is_committed_before_202(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    payload = b'{"kodebooking": "KB-COMMIT", "taskid": 3}'
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/updatewaktu", data=payload,
                         headers={"Content-Type": "application/json"}) as resp:
        # Read the file while the answer is in hand: the row must already be committed.
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
        row = stored(tmp_path, request_id)
        body = await resp.json()
        location = resp.headers["Location"]
    assert body["metadata"]["code"] == 202
    assert isinstance(body["metadata"]["message"], str) and body["metadata"]["message"]
    assert body["response"] is None
    assert set(body) == {"metadata", "response"}
    assert location == f"/_tenang/requests/{request_id}"  # on the SIMRS-facing port
    async with http.get(tenang.gateway_url + location) as lookup:
        assert lookup.status == 202  # not delivered yet
        assert (await lookup.json())["tenang"]["status"] == "pending"
    assert row["status"] == "pending"
    assert bytes(row["body"]) == payload
    assert row["method"] == "POST"
    assert row["path"] == "/antreanrs/antrean/updatewaktu"
    assert row["upstream"] == "antrean"
    assert bpjs_sim.state.log == []

    async with http.get(f"{tenang.admin_url}/api/v1/requests/{request_id}",
                        headers=admin_headers()) as resp:
        assert resp.status == 200
        assert (await resp.json())["id"] == request_id


async def test_vclaim_preset_answers_with_metaData_and_string_code(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    config = with_upstream(make_config(tmp_path, bpjs_sim.url), name="vclaim",
                           prefix="/vclaim-rest", target=bpjs_sim.url + "/vclaim-rest",
                           preset="vclaim")
    tenang = await start_tenang(config, relay_enabled=False)
    async with http.put(f"{tenang.gateway_url}/vclaim-rest/SEP/2.0/update",
                        data=b'{"request": {"t_sep": {}}}') as resp:
        assert resp.status == 202
        body = await resp.json()
        request_id = resp.headers["X-Tenang-Request-Id"]
    assert set(body) == {"metaData", "response"}
    assert body["metaData"]["code"] == "202"
    assert body["metaData"]["message"]
    assert body["response"] is None
    assert stored(tmp_path, request_id)["upstream"] == "vclaim"


async def test_body_at_the_limit_is_accepted(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    config = make_config(tmp_path, bpjs_sim.url, server={"max_body_bytes": 1000})
    tenang = await start_tenang(config, relay_enabled=False)
    payload = b"a" * 1000
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add", data=payload) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    assert bytes(stored(tmp_path, request_id)["body"]) == payload


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversized_body_is_refused_with_413_and_not_stored(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, chunked: bool) -> None:
    config = make_config(tmp_path, bpjs_sim.url, server={"max_body_bytes": 1000})
    tenang = await start_tenang(config)

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b"b" * 400

    data: Any = pieces() if chunked else b"b" * 2400
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add", data=data) as resp:
        assert resp.status == 413
        if chunked:
            assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        body = json.loads(await resp.read())
        assert "X-Tenang-Request-Id" not in resp.headers
    assert body["metadata"]["code"] == 413
    assert body["metadata"]["message"]
    assert body["response"] is None
    assert db_rows(tmp_path) == []

    # A later small write still works and is the only thing that reaches the upstream.
    after = booking("KB-AFTER-413")
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add", json=after) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    await delivered(http, tenang.admin_url, request_id)
    assert [e["body"] for e in bpjs_sim.state.log] == [after]


async def test_unknown_prefix_is_refused_and_never_forwarded(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    async with http.post(f"{tenang.gateway_url}/vclaim-rest/SEP/2.0/insert",
                         json={"kodebooking": "KB-NOWHERE"}) as resp:
        assert resp.status == 404
        assert resp.content_type == "application/json"
        body = await resp.json()
        assert "X-Tenang-Request-Id" not in resp.headers
    assert body["metaData"]["code"] == "404"
    assert body["metadata"]["code"] == 404
    assert body["metadata"]["message"]
    assert body["response"] is None
    assert db_rows(tmp_path) == []

    await assert_only_the_barrier_reaches_upstream(http, tenang, bpjs_sim)


async def assert_only_the_barrier_reaches_upstream(
        http: aiohttp.ClientSession, tenang: Any, sim: RunningSimulator) -> None:
    """Send a valid write and wait for its delivery: a refused request sent earlier would
    have reached the upstream by then if it had been queued."""
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         json=booking("KB-BARRIER")) as resp:
        request_id = resp.headers["X-Tenang-Request-Id"]
    await delivered(http, tenang.admin_url, request_id)
    assert [e["path"] for e in sim.state.log] == ["/antreanrs/antrean/add"]


async def test_prefix_match_is_case_insensitive(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    async with http.post(f"{tenang.gateway_url}/ANTREANRS/antrean/add",
                         json=booking("KB-UPPER")) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    assert stored(tmp_path, request_id)["upstream"] == "antrean"
    await delivered(http, tenang.admin_url, request_id)
    assert [e["path"] for e in bpjs_sim.state.log] == ["/antreanrs/antrean/add"]
    assert applied(bpjs_sim)["KB-UPPER/add"] == 1


@pytest.mark.parametrize("raw_path", [
    "/antreanrs/antrean/../../admin",
    "/antreanrs/a/../b",
    "/antreanrs/..",
    "/antreanrs/%2e%2e/antrean/add",
    "/antreanrs/%2E%2E/%2E%2E/etc/passwd",
    "/antreanrs/antrean/.%2e/.%2E/admin",
    "/antreanrs/a%2F..%2F..%2Fadmin",
    "/antreanrs//..//antrean/add",
])
async def test_dot_dot_segments_are_refused(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, raw_path: str) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    url = URL(tenang.gateway_url + raw_path, encoded=True)
    async with http.post(url, json={"kodebooking": "KB-DOTDOT"}) as resp:
        assert resp.status == 400
        body = await resp.json()
        assert "X-Tenang-Request-Id" not in resp.headers
    assert body["metadata"]["code"] == 400
    assert body["response"] is None
    assert db_rows(tmp_path) == []

    await assert_only_the_barrier_reaches_upstream(http, tenang, bpjs_sim)


@pytest.mark.parametrize(("content_type", "payload"), [
    ("application/x-www-form-urlencoded", b'{"noKartu":"0001234567890","tglSEP":"2024-05-01"}'),
    ("text/plain; charset=utf-8", b'{"kodebooking": "KB-TEXT", "nama": "Sri Wahyuni"}'),
    ("application/octet-stream", bytes(range(256)) + b"\r\n\x00\xff"),
    (None, b'{"kodebooking":"KB-NO-CT"}   \n'),
], ids=["form-urlencoded-json", "text-plain", "binary", "no-content-type"])
async def test_any_content_type_is_stored_byte_for_byte(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, content_type: str | None, payload: bytes) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    headers = {"Content-Type": content_type} if content_type else {}
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add", data=payload,
                         headers=headers,
                         skip_auto_headers=() if content_type else ("Content-Type",)) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    row = stored(tmp_path, request_id)
    assert bytes(row["body"]) == payload
    assert header(stored_headers(row), "Content-Type") == ([content_type] if content_type
                                                           else [])


def generic_vclaim(
        tmp_path: Path, sim: RunningSimulator, target: str = "/vclaim-rest",
        **changes: Any) -> Config:
    """A ``generic`` upstream (no route table: every method is queued) on VClaim paths,
    the service with PUT and DELETE routes."""
    return with_upstream(make_config(tmp_path, sim.url, preset="generic"), name="vclaim",
                         prefix="/vclaim-rest", target=sim.url + target, **changes)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_get_and_delete_bodies_are_stored_and_forwarded(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, method: str) -> None:
    # generic: every method is queued (the antrean preset passes GETs through live).
    tenang = await start_tenang(generic_vclaim(tmp_path, bpjs_sim))
    if method == "GET":  # a read BPJS answers whatever the body (kept as text: not JSON)
        path, payload = "/vclaim-rest/referensi/propinsi", b"kodebooking=KB-GET&ket=batal"
    else:
        no_sep = await make_sep(bpjs_sim)
        path = "/vclaim-rest/SEP/2.0/delete"
        payload = b'{"request": {"t_sep": {"noSep": "%s", "user": "Coba Ws"}}}' % (
            no_sep.encode())
    async with http.request(method, tenang.gateway_url + path,
                            data=payload, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    row = stored(tmp_path, request_id)
    assert row["method"] == method
    assert bytes(row["body"]) == payload
    await delivered(http, tenang.admin_url, request_id)
    [entry] = bpjs_sim.state.entries(path_contains=path)
    assert entry["method"] == method
    assert entry["body"] == (payload.decode() if method == "GET" else json.loads(payload))


async def test_stored_headers_keep_user_key_and_drop_signature_and_hop_by_hop(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    # Without a secret to re-sign with, a replay carries no signature at all.
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, secret_env=None,
                                            unsigned_replays=True))
    ts = bpjs_headers()["X-timestamp"]  # intake still checks its age
    sent = [
        ("X-cons-id", "12345"),
        ("X-timestamp", ts),
        ("X-signature", "c2lnbmF0dXJlLW9uZQ=="),
        ("x-SIGNATURE", "c2lnbmF0dXJlLXR3bw=="),
        ("user_key", "0123456789abcdef0123456789abcdef"),
        ("Content-Type", "application/json"),
        ("Connection", "keep-alive, X-Hop-Token"),
        ("X-Hop-Token", "only-for-this-hop"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("X-Rs-Kode", "RS0001"),
    ]
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add", headers=sent,
                         data=b'{"kodebooking": "KB-HEADERS"}') as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    kept = stored_headers(stored(tmp_path, request_id))
    names = {k.lower() for k, _ in kept}
    assert header(kept, "user_key") == ["0123456789abcdef0123456789abcdef"]
    assert header(kept, "X-cons-id") == ["12345"]
    assert header(kept, "X-timestamp") == [ts]
    for dropped in ("x-rs-kode",  # not for BPJS (forward_headers would add it)
                    "x-signature", "x-hop-token", "connection", "keep-alive",
                    "proxy-authorization", "te", "trailer", "transfer-encoding", "host"):
        assert dropped not in names, f"{dropped} was stored"
    raw = db_rows(tmp_path, "SELECT headers FROM requests")[0]["headers"]
    assert "c2lnbmF0dXJl" not in raw
    assert "only-for-this-hop" not in raw

    # BPJS refuses an unsigned call; what matters here is what reached it.
    await wait_until(lambda: bpjs_sim.state.log != [], what="the replay to reach BPJS")
    [entry] = bpjs_sim.state.log
    assert header(entry["headers"], "user_key") == ["0123456789abcdef0123456789abcdef"]
    assert header(entry["headers"], "X-cons-id") == ["12345"]
    assert header(entry["headers"], "X-signature") == []
    assert header(entry["headers"], "X-Hop-Token") == []


async def test_delivery_reproduces_method_path_query_body_and_user_key(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    # The target's path differs from the prefix (BPJS's dev host): the path is rewritten.
    tenang = await start_tenang(generic_vclaim(tmp_path, bpjs_sim, "/vclaim-rest-dev"))
    no_sep = await make_sep(bpjs_sim)
    query = "tanggal=2024-05-01&kode=A%26B&rumus=1%2B1&nama=Budi%20Santoso&kota=K%C3%B6ln"
    payload = b'{"request": {"t_sep": {"noSep": "%s", "catatan": "KB-REPLAY"}}}' % (
        no_sep.encode())
    url = URL(f"{tenang.gateway_url}/vclaim-rest/SEP/2.0/update?{query}", encoded=True)
    async with http.put(url, data=payload, headers={
            "user_key": "fedcba9876543210fedcba9876543210",
            "Content-Type": "application/json"}) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    await delivered(http, tenang.admin_url, request_id)

    [entry] = bpjs_sim.state.entries(path_contains="SEP/2.0/update")
    assert entry["method"] == "PUT"
    assert entry["path"] == "/vclaim-rest-dev/SEP/2.0/update"
    assert entry["body"] == json.loads(payload)
    assert header(entry["headers"], "user_key") == ["fedcba9876543210fedcba9876543210"]
    assert header(entry["headers"], "Content-Type") == ["application/json"]
    raw_path, _, raw_query = entry["target"].partition("?")
    assert raw_path == "/vclaim-rest-dev/SEP/2.0/update"
    assert parse_qsl(raw_query, keep_blank_values=True) == parse_qsl(
        query, keep_blank_values=True)


# With max_pending set the queue is counted before the insert: a store that cannot
# answer then must be refused like a failed insert, not as "may not have been stored".
@pytest.mark.parametrize("cap", [{}, {"max_pending": 100}])
async def test_store_unavailable_gives_503_with_reason_never_202(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, cap: dict[str, int]) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, **cap))
    await tenang.backend.close()
    for preset_path in ("/antreanrs/antrean/add", "/antreanrs/antrean/updatewaktu"):
        async with http.post(f"{tenang.gateway_url}{preset_path}",
                             json={"kodebooking": "KB-NO-STORE"}) as resp:
            assert resp.status == 503
            body = await resp.json()
            assert "X-Tenang-Request-Id" not in resp.headers
        assert body["metadata"]["code"] == 503
        assert body["response"] is None
        message = body["metadata"]["message"].lower()
        assert "store unavailable" in message or "closed" in message, message
        assert "internal" not in message, message
    assert db_rows(tmp_path) == []
    assert bpjs_sim.state.log == []


class ExplodingIntake(MemoryIntake):
    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        raise RuntimeError("a bug, not a store error")


async def test_unexpected_intake_error_gets_an_envelope_not_a_traceback(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    backend, _ = memory_with_intake(ExplodingIntake)
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), backend=backend)
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         json={"kodebooking": "KB-500"}) as resp:
        assert resp.status == 500
        text = await resp.text()
    doc = json.loads(text)
    assert doc["metadata"]["code"] == 500 and doc["response"] is None
    assert "Traceback" not in text and "a bug" not in text


async def test_latin1_header_is_stored_and_answered_202(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang) -> None:
    """An old SIMRS may send header bytes that are not UTF-8; the request must still be
    stored (read as Latin-1), not refused, and not spoil its commit batch."""
    cfg = make_config(tmp_path, bpjs_sim.url, forward_headers=["X-Petugas"])
    tenang = await start_tenang(cfg, relay_enabled=False)
    host, port = tenang.gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"kodebooking": "KB-LATIN1"}'
    signed = "".join(f"{k}: {v}\r\n" for k, v in bpjs_headers().items()).encode()
    writer.write(b"POST /antreanrs/antrean/add HTTP/1.1\r\nHost: x\r\n" + signed +
                 b"X-Petugas: Jos\xe9\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    status_line = (await reader.readline()).decode()
    writer.close()
    assert " 202 " in status_line
    (row,) = db_rows(tmp_path)
    assert ["X-Petugas", "José"] in json.loads(row["headers"])
