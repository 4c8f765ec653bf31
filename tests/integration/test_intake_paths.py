"""Request targets and resubmissions over real HTTP: the raw query reaches BPJS as sent,
non-canonical paths get their endpoint's rules, absolute-form targets are refused, and
dedup (natural key, Idempotency-Key) returns the original only when it should."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.delivery.upstream import upstream_url
from proxy.intake.dedup import MAX_KEY_CHARS
from proxy.lifecycle import Status, still_matches
from proxy.store.records import StoredRequest
from tests.bpjs_support import booking, targets
from tests.conftest import StartTenang, make_config
from tests.integration.test_intake import (
    assert_only_the_barrier_reaches_upstream,
    db_rows,
    delivered,
    stored,
)
from tests.signing import bpjs_headers

ADD = "/antreanrs/antrean/add"


async def post_raw(gateway_url: str, target: bytes, body: bytes) -> tuple[int, Any]:
    """Send a request line written by hand (aiohttp's client only sends origin-form) and
    return the status and the JSON body of the answer."""
    host, port = gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    signed = "".join(f"{k}: {v}\r\n" for k, v in bpjs_headers().items()).encode()
    writer.write(b"POST " + target + b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close"
                 b"\r\n" + signed + b"Content-Length: " + str(len(body)).encode() +
                 b"\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload)


# --- the query, byte for byte ----------------------------------------------------------


QUERY = "catatan=kamar%231&kode=50%2541&rumus=1+1&huruf=%41&nama=Budi%20Santoso&kosong="


async def test_write_query_is_stored_and_forwarded_exactly_as_sent(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    url = URL(f"{tenang.gateway_url}{ADD}?{QUERY}", encoded=True)
    async with http.post(url, data=json.dumps(booking("KB-QUERY"))) as resp:
        assert resp.status == 202
        request_id = resp.headers["X-Tenang-Request-Id"]
    # Decoded, '%23' became a fragment (the rest of the query lost), '%2541' became 'A'
    # and '+' a space; stored and sent raw, BPJS decodes what the SIMRS encoded.
    assert stored(tmp_path, request_id)["query"] == QUERY
    await delivered(http, tenang.admin_url, request_id)
    assert targets(bpjs_sim) == [f"{ADD}?{QUERY}"]


async def test_passthrough_read_query_is_forwarded_exactly_as_sent(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    url = URL(f"{tenang.gateway_url}/antreanrs/ref/poli?{QUERY}", encoded=True)
    async with http.get(url) as resp:
        assert resp.status == 200 and "X-Tenang-Fallback" not in resp.headers
    assert targets(bpjs_sim) == [f"/antreanrs/ref/poli?{QUERY}"]
    assert db_rows(tmp_path) == []


def test_upstream_url_keeps_the_encoding_and_only_quotes_what_cannot_stand_raw(
        tmp_path: Path) -> None:
    up = make_config(tmp_path, "http://bpjs.example:8080").upstreams[0]
    assert upstream_url(up, "/antreanrs/antrean/add", QUERY) == \
        f"http://bpjs.example:8080/antreanrs/antrean/add?{QUERY}"
    # Rows stored before queries were kept raw hold decoded text: still a valid target.
    assert upstream_url(up, "/antreanrs/ref", "nama=Budi Santoso&catatan=kamar#1&k=K\u00f6ln") \
        == "http://bpjs.example:8080/antreanrs/ref?nama=Budi%20Santoso&catatan=kamar%231" \
           "&k=K%C3%B6ln"
    for path in ("/antreanrs/../admin", "/antreanrs/a/%2e%2E/b", "/antreanrs/a\\..\\b"):
        with pytest.raises(ValueError, match="segment"):
            upstream_url(up, path, "")


# --- non-canonical paths ------------------------------------------------------------------


async def test_double_slash_resends_get_the_endpoint_rules_and_dedup_to_one(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    ids = []
    for _ in range(2):  # Khanza resending, its base URL configured with a trailing '/'
        url = URL(f"{tenang.gateway_url}/antreanrs//antrean//add", encoded=True)
        async with http.post(url, data=json.dumps(booking("KB-SLASH"))) as resp:
            assert resp.status == 202
            ids.append(resp.headers["X-Tenang-Request-Id"])
    assert ids[0] == ids[1]
    row = stored(tmp_path, ids[0])
    assert (row["path"], row["endpoint"]) == (ADD, "antrean.add")
    assert row["ordering_key"] == "antrean:kodebooking=KB-SLASH"
    assert row["expires_at"] is not None
    await delivered(http, tenang.admin_url, ids[0])
    assert targets(bpjs_sim) == [ADD]


# --- absolute-form request targets --------------------------------------------------------


async def test_absolute_form_targets_are_refused_and_never_stored_or_sent(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    body = b'{"kodebooking":"KB-ABSOLUTE"}'
    for target in (b"http://evil.example/antreanrs/antrean/add",
                   b"http://a../antreanrs/antrean/add",  # would leave the target's path
                   b"https://evil.example:443/antreanrs/antrean/add?x=1"):
        status, doc = await post_raw(tenang.gateway_url, target, body)
        assert status == 400, target
        assert doc["metadata"]["code"] == 400 and doc["response"] is None
        assert "'/'" in doc["metadata"]["message"]
    assert db_rows(tmp_path) == []
    await assert_only_the_barrier_reaches_upstream(http, tenang, bpjs_sim)
    assert targets(bpjs_sim) == [ADD]


# --- dedup: the window and still-pending originals ---------------------------------------


def _original(status: Status, received_at: float, updated_at: float,
              dedup_key: str = "antrean:antrean.add:kodebooking=KB") -> StoredRequest:
    return StoredRequest(id="r1", upstream="antrean", method="POST", path=ADD, query="",
                         headers=(), body=b"", received_at=received_at, status=status,
                         attempts=0, next_attempt_at=None, updated_at=updated_at,
                         reason=None, dedup_key=dedup_key)


def test_an_original_not_yet_final_matches_however_old() -> None:
    now, window = 1_000_000.0, 600.0
    for status in (Status.PENDING, Status.IN_FLIGHT, Status.HELD):
        assert still_matches(_original(status, 0.0, 0.0), window, now), status


def test_a_final_original_matches_only_within_the_window_after_it_settled() -> None:
    now, window = 1_000_000.0, 600.0
    # Waited two days for BPJS, settled a minute ago: a resend is still the same call.
    assert still_matches(_original(Status.SUCCEEDED, 0.0, now - 60), window, now)
    assert not still_matches(_original(Status.SUCCEEDED, 0.0, now - 601), window, now)
    assert not still_matches(_original(Status.CANCELLED, now, now), window, now)
    # A natural-key resend after a failure is a person trying again; a key is not.
    assert not still_matches(_original(Status.FAILED, now, now), window, now)
    assert not still_matches(_original(Status.DEAD, now, now), window, now)
    assert still_matches(_original(Status.FAILED, now, now, "antrean:idem:POST /x k"),
                         window, now)


async def test_a_resend_of_a_still_pending_original_after_the_window_is_a_duplicate(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    # A zero window has passed by the resend: only the original's state can match it.
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, dedup_window_s=0.0),
                                relay_enabled=False)  # BPJS unreachable: nothing settles
    body = b'{"kodebooking":"KB-WAIT","taskid":3,"waktu":1}'
    answers = []
    for _ in range(2):
        async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/updatewaktu",
                             data=body) as resp:
            assert resp.status == 202
            answers.append(dict(resp.headers))
    first, second = answers
    assert second["X-Tenang-Duplicate-Of"] == first["X-Tenang-Request-Id"]
    assert len(db_rows(tmp_path)) == 1


async def test_a_resend_after_the_window_of_a_settled_original_is_new(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, dedup_window_s=0.0))
    ids = []
    for _ in range(2):
        async with http.post(f"{tenang.gateway_url}{ADD}",
                             data=json.dumps(booking("KB-SETTLED"))) as resp:
            ids.append(resp.headers["X-Tenang-Request-Id"])
        await delivered(http, tenang.admin_url, ids[-1])
    assert ids[0] != ids[1]


# --- Idempotency-Key scope ---------------------------------------------------------------


async def test_an_idempotency_key_reused_for_another_call_is_not_a_duplicate(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    ids = []
    for path in (ADD, "/antreanrs/antrean/batal", ADD):
        async with http.post(f"{tenang.gateway_url}{path}",
                             data=json.dumps(booking("KB-IDEM", keterangan="x")),
                             headers={"Idempotency-Key": "simrs-7"}) as resp:
            assert resp.status == 202
            ids.append(resp.headers["X-Tenang-Request-Id"])
    add, batal, add_again = ids
    assert add == add_again and batal != add
    for request_id in (add, batal):
        await delivered(http, tenang.admin_url, request_id)
    assert [e["path"] for e in bpjs_sim.state.log] == [ADD, "/antreanrs/antrean/batal"]


async def test_long_idempotency_keys_are_hashed_not_cut(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, preset="generic"),
                                relay_enabled=False)
    shared = "k" * (MAX_KEY_CHARS + 50)
    ids = []
    for key in (shared + "A", shared + "B", shared + "A"):
        async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add", data=b"{}",
                             headers={"Idempotency-Key": key}) as resp:
            assert resp.status == 202
            ids.append(resp.headers["X-Tenang-Request-Id"])
    assert ids[0] == ids[2] and ids[0] != ids[1]
    keys = [r["dedup_key"] for r in db_rows(tmp_path, "SELECT dedup_key FROM requests")]
    assert len(keys) == 2
    for key in keys:
        prefix, _, digest = key.partition(":idem:sha256:")
        assert prefix == "antrean" and len(digest) == 64
