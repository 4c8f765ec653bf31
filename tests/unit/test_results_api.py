"""Result lookup handler without sockets: who may ask (fake peers), and failures that
must still end in an envelope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxy.config import Config, parse_config
from proxy.intake.results import ResultsApi, is_loopback
from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.errors import StoreUnavailable
from proxy.store.memory import memory_backend
from proxy.store.records import AttemptRecord, NewRequest
from tests.store_support import enqueue

T0 = 1_750_000_000.0
REQUEST_ID = "01JTESTREQUEST000000000000"


def config(token: str | None = None, secret: bool = False) -> Config:
    up: dict[str, Any] = {"name": "vclaim", "prefix": "/vclaim-rest",
                          "target": "http://127.0.0.1:9/vclaim-rest", "preset": "vclaim",
                          "cons_id": "1234"}
    env = {"SECRET": "s3cret", "RT": token or ""}
    if secret:
        up["secret_env"] = "SECRET"
    else:
        up["unsigned_replays"] = True
    return parse_config({"upstreams": [up], "server": {"results_token_env": "RT"}},
                        Path("."), env)


def lookup_request(peer: str, headers: dict[str, str] | None = None) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default)
    return make_mocked_request("GET", f"/_tenang/requests/{REQUEST_ID}",
                               headers=headers or {}, match_info={"id": REQUEST_ID},
                               transport=transport)


async def store_with_sep(status: Status = Status.SUCCEEDED) -> Backend:
    """A VClaim SEP insert that ended ``status`` with BPJS's (decrypted) answer stored."""
    store = memory_backend()
    await enqueue(store.intake, NewRequest(
        id=REQUEST_ID, upstream="vclaim", method="POST", path="/vclaim-rest/SEP/2.0/insert",
        query="", headers=(("user_key", "uk-very-secret"),), body=b"{}", received_at=T0))
    await store.queue.claim_due("vclaim", T0, 1, "w", T0 + 60)
    answer = {"metaData": {"code": "200", "message": "Sukses"},
              "response": {"sep": {"noSep": "0301R0011125V000001"}}}
    await store.queue.complete_attempt(
        REQUEST_ID, "w", AttemptRecord(1, T0, 0.2, Verdict.SUCCESS, 200, None,
                                       json.dumps(answer).encode()),
        Transition(status, "ok"), T0 + 1)
    return store


def body_of(resp: web.Response) -> Any:
    assert isinstance(resp.body, bytes)
    return json.loads(resp.body)


@pytest.mark.parametrize(("remote", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.5", False), ("192.168.1.20", False), ("::ffff:10.0.0.5", False),
    ("fe80::1%eth0", False), ("", False), (None, False), ("not-an-ip", False),
])
def test_is_loopback(remote: str | None, loopback: bool) -> None:
    assert is_loopback(remote) is loopback


async def test_without_a_token_only_loopback_peers_may_ask() -> None:
    api = ResultsApi(config(), (await store_with_sep()).intake)
    refused = await api.handle(lookup_request("10.0.0.5"))
    assert refused.status == 403
    doc = body_of(refused)
    assert doc["metaData"]["code"] == "403" and doc["response"] is None
    assert "tenang" not in doc
    allowed = await api.handle(lookup_request("127.0.0.1"))
    assert allowed.status == 200
    assert body_of(allowed)["response"]["sep"]["noSep"] == "0301R0011125V000001"


async def test_with_a_token_any_peer_with_it_may_ask() -> None:
    api = ResultsApi(config(token="tok"), (await store_with_sep()).intake)
    assert (await api.handle(lookup_request("127.0.0.1"))).status == 401
    resp = await api.handle(lookup_request("10.0.0.5", {"Authorization": "bearer tok"}))
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"


async def test_vclaim_spelling_and_no_headers_echoed() -> None:
    resp = await ResultsApi(config(), (await store_with_sep()).intake).handle(
        lookup_request("127.0.0.1"))
    doc = body_of(resp)
    assert doc["metaData"] == {"code": "200", "message": "Sukses"}
    assert doc["tenang"]["status"] == "succeeded" and doc["tenang"]["attempts"] == 1
    assert isinstance(resp.body, bytes) and b"uk-very-secret" not in resp.body


async def test_signature_headers_are_ignored_without_a_secret() -> None:
    signed = {"X-cons-id": "1234", "X-timestamp": "1750000000", "X-signature": "bogus"}
    resp = await ResultsApi(config(secret=False), (await store_with_sep()).intake).handle(
        lookup_request("127.0.0.1", signed))
    assert resp.status == 200
    assert body_of(resp)["response"]["sep"]["noSep"] == "0301R0011125V000001"


async def test_a_dead_request_gets_tenangs_envelope_not_a_stale_answer() -> None:
    resp = await ResultsApi(config(), (await store_with_sep(Status.DEAD)).intake).handle(
        lookup_request("127.0.0.1"))
    doc = body_of(resp)
    assert resp.status == 200
    assert doc["metaData"]["code"] == "500" and "dead" in doc["metaData"]["message"]
    assert doc["response"] is None


async def test_store_trouble_is_a_503_envelope() -> None:
    store = await store_with_sep()
    await store.close()
    resp = await ResultsApi(config(), store.intake).handle(lookup_request("127.0.0.1"))
    assert resp.status == 503
    assert body_of(resp)["metadata"]["code"] == 503


async def test_an_unexpected_error_is_a_500_envelope_not_a_traceback() -> None:
    store = await store_with_sep()
    with mock.patch.object(store.intake, "attempts", side_effect=RuntimeError("boom")):
        resp = await ResultsApi(config(), store.intake).handle(lookup_request("127.0.0.1"))
    assert resp.status == 500
    doc = body_of(resp)
    assert doc["metaData"]["code"] == "500" and "boom" not in json.dumps(doc)


async def test_store_unavailable_reason_is_shown() -> None:
    store = await store_with_sep()
    with mock.patch.object(store.intake, "get", side_effect=StoreUnavailable("locked")):
        resp = await ResultsApi(config(), store.intake).handle(lookup_request("127.0.0.1"))
    assert resp.status == 503
    assert "store unavailable" in body_of(resp)["metadata"]["message"]
