"""The admin JSON API over real HTTP: auth, health, lookup, listing, summary, operations."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from tests.bpjs_support import OUTAGE, applied, booking
from tests.conftest import StartTenang, admin_headers, make_config, wait_until
from tests.signing import bpjs_headers

USER_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def two_upstreams(config: Config, sim_url: str) -> Config:
    """``config`` plus a VClaim upstream on the same simulator."""
    antrean = config.upstreams[0]
    vclaim = dataclasses.replace(antrean, name="vclaim", prefix="/vclaim-rest",
                                 target=sim_url + "/vclaim-rest", preset="vclaim")
    return dataclasses.replace(config, upstreams=(antrean, vclaim))


def parse_iso(value: str) -> float:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def write(http: aiohttp.ClientSession, gateway_url: str, kodebooking: str,
                path: str = "/antreanrs/antrean/add", **kwargs: Any) -> str:
    async with http.post(f"{gateway_url}{path}", json=booking(kodebooking),
                         **kwargs) as resp:
        assert resp.status == 202
        return resp.headers["X-Tenang-Request-Id"]


async def api(http: aiohttp.ClientSession, method: str, url: str,
              expect: int = 200) -> Any:
    async with http.request(method, url, headers=admin_headers()) as resp:
        assert resp.status == expect, (resp.status, await resp.text())
        return await resp.json()


async def wait_status(http: aiohttp.ClientSession, admin_url: str, request_id: str,
                      status: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await api(http, "GET", f"{admin_url}/api/v1/requests/{request_id}"))
        return seen["status"] == status

    await wait_until(reached, what=f"{request_id} to become {status}")
    return seen


API_ROUTES = [
    ("GET", "/api/v1/requests"),
    ("GET", "/api/v1/requests/01HZZZZZZZZZZZZZZZZZZZZZZZ"),
    ("GET", "/api/v1/summary"),
    ("POST", "/api/v1/requests/01HZZZZZZZZZZZZZZZZZZZZZZZ/retry"),
    ("POST", "/api/v1/requests/01HZZZZZZZZZZZZZZZZZZZZZZZ/cancel"),
]


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "test-admin-token",
                                  "Bearer test-admin-token-but-longer", "Basic dGVzdDp0ZXN0"],
                         ids=["none", "wrong", "no-scheme", "prefix", "basic"])
async def test_api_needs_the_bearer_token(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, auth: str | None) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    request_id = await write(http, tenang.gateway_url, "KB-AUTH")
    headers = {"Authorization": auth} if auth else {}
    for method, path in [*API_ROUTES, ("POST", f"/api/v1/requests/{request_id}/cancel")]:
        async with http.request(method, f"{tenang.admin_url}{path}", headers=headers) as resp:
            assert resp.status == 401, (method, path)
            assert "error" in await resp.json()
    # Nothing was done without the token.
    doc = await api(http, "GET", f"{tenang.admin_url}/api/v1/requests/{request_id}")
    assert doc["status"] == "pending"


async def test_health_endpoints_need_no_token_and_readyz_tracks_the_store(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    async with http.get(f"{tenang.admin_url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{tenang.admin_url}/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ready"

    await tenang.backend.close()
    async with http.get(f"{tenang.admin_url}/readyz") as resp:
        assert resp.status == 503
        body = await resp.json()
    assert isinstance(body["reason"], str) and body["reason"]
    assert "store" in body["reason"].lower()
    async with http.get(f"{tenang.admin_url}/healthz") as resp:
        assert resp.status == 200


async def test_readyz_is_not_ready_while_intake_would_refuse_and_names_why(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url, max_pending=2),
                                relay_enabled=False)
    async with http.get(f"{tenang.admin_url}/readyz") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["upstreams"]["antrean"] == {"ready": True, "queued": 0, "max_pending": 2}
    assert doc["store"]["writable"] is True and doc["store"]["min_free_mb"] == 64
    ids = [await write(http, tenang.gateway_url, f"KB-READY-{n}") for n in range(2)]
    async with http.get(f"{tenang.admin_url}/readyz") as resp:
        assert resp.status == 503  # intake answers 503 now: the balancer must know
        doc = await resp.json()
    assert doc["status"] == "not ready" and "antrean" in doc["reason"]
    assert doc["upstreams"]["antrean"] == {"ready": False, "queued": 2, "max_pending": 2}
    async with http.get(f"{tenang.admin_url}/readyz?upstream=antrean") as resp:
        assert resp.status == 503
    async with http.get(f"{tenang.admin_url}/readyz?upstream=vclaim") as resp:
        assert resp.status == 404

    # An operator's cancel is not an event backpressure hears: the recount finds it.
    await api(http, "POST", f"{tenang.admin_url}/api/v1/requests/{ids[0]}/cancel")

    async def ready() -> bool:
        async with http.get(f"{tenang.admin_url}/readyz") as resp:
            return resp.status == 200
    await wait_until(ready, timeout_s=5.0, what="/readyz ready after the cancel")


async def test_readyz_is_not_ready_below_the_free_disk_floor(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    tenang.backpressure.disk.free_bytes = lambda: 10 * 1024 * 1024  # a full disk
    tenang.backpressure.disk._sampled_at = float("-inf")
    async with http.get(f"{tenang.admin_url}/readyz") as resp:
        assert resp.status == 503
        doc = await resp.json()
    assert "disk almost full" in doc["reason"] and "min_free_mb" in doc["reason"]
    assert doc["store"] == {"writable": True, "free_mb": 10.0, "min_free_mb": 64}
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         json=booking("KB-FULL")) as resp:
        assert resp.status == 503  # what readiness announced


async def test_request_detail_shows_attempts_and_masks_user_key(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    await bpjs_sim.set_mode(**OUTAGE)
    signed = {**bpjs_headers(), "user_key": USER_KEY}
    request_id = await write(http, tenang.gateway_url, "KB-DETAIL", headers=signed)

    async def attempted() -> bool:
        doc = await api(http, "GET", f"{tenang.admin_url}/api/v1/requests/{request_id}")
        return doc["attempt_count"] >= 1

    await wait_until(attempted, what="a first, failing attempt")
    await bpjs_sim.set_mode("up")
    await wait_status(http, tenang.admin_url, request_id, "succeeded")

    async with http.get(f"{tenang.admin_url}/api/v1/requests/{request_id}",
                        headers=admin_headers()) as resp:
        assert resp.status == 200
        raw = await resp.text()
        doc = await resp.json()
    assert USER_KEY not in raw
    assert signed["X-signature"] not in raw
    assert doc["id"] == request_id
    assert doc["status"] == "succeeded"
    assert doc["upstream"] == "antrean"
    assert doc["method"] == "POST"
    assert doc["path"] == "/antreanrs/antrean/add"
    received = parse_iso(doc["received_at"])
    assert parse_iso(doc["updated_at"]) >= received

    headers = {name.lower(): value for name, value in doc["headers"]}
    assert "user_key" in headers
    assert headers["user_key"] != USER_KEY
    assert headers["x-cons-id"] == "12345"
    assert "x-signature" not in headers

    attempts = doc["attempts"]
    assert len(attempts) == doc["attempt_count"] == len(bpjs_sim.state.log) >= 2
    assert [a["number"] for a in attempts] == list(range(1, len(attempts) + 1))
    for failed in attempts[:-1]:
        assert failed["http_status"] == 503
        assert failed["outcome"] == "transient"
        assert "503" in failed["error"]
        assert "Service Temporarily Unavailable" in failed["response"]
    last = attempts[-1]
    assert last["http_status"] == 200
    assert last["outcome"] == "success"
    assert last["error"] is None
    assert '"OK"' in last["response"]
    for a in attempts:
        assert isinstance(a["duration_ms"], int | float) and a["duration_ms"] >= 0
        assert parse_iso(a["started_at"]) >= received - 0.001
    assert doc["last_response"] == last["response"]


async def test_unknown_request_id_is_404(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    for method, suffix in (("GET", ""), ("POST", "/retry"), ("POST", "/cancel")):
        body = await api(http, method,
                         f"{tenang.admin_url}/api/v1/requests/01HNOSUCHREQUEST0000000000{suffix}",
                         expect=404)
        assert "error" in body


async def test_list_filters_by_status_and_upstream(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    config = two_upstreams(make_config(tmp_path, bpjs_sim.url), bpjs_sim.url)
    tenang = await start_tenang(config, relay_enabled=False)
    antrean = [await write(http, tenang.gateway_url, f"KB-A{i}") for i in range(3)]
    vclaim = [await write(http, tenang.gateway_url, f"KB-V{i}", path="/vclaim-rest/SEP/insert")
              for i in range(2)]
    await api(http, "POST", f"{tenang.admin_url}/api/v1/requests/{antrean[0]}/cancel")
    base = f"{tenang.admin_url}/api/v1/requests"

    async def ids(query: str) -> list[str]:
        doc = await api(http, "GET", f"{base}?{query}")
        return [item["id"] for item in doc["items"]]

    assert sorted(await ids("")) == sorted(antrean + vclaim)
    assert sorted(await ids("upstream=vclaim")) == sorted(vclaim)
    assert sorted(await ids("status=pending&upstream=antrean")) == sorted(antrean[1:])
    assert await ids("status=cancelled") == [antrean[0]]
    assert await ids("status=succeeded") == []
    assert await ids("upstream=nosuch") == []
    items = (await api(http, "GET", f"{base}?upstream=vclaim"))["items"]
    assert {i["upstream"] for i in items} == {"vclaim"}
    assert {i["status"] for i in items} == {"pending"}
    assert {i["path"] for i in items} == {"/vclaim-rest/SEP/insert"}


@pytest.mark.parametrize("query", ["limit=0", "limit=1000", "limit=x", "limit=-1",
                                   "limit=2.5", "status=bogus", "status=PENDING"])
async def test_list_rejects_bad_parameters(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, query: str) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    body = await api(http, "GET", f"{tenang.admin_url}/api/v1/requests?{query}", expect=400)
    assert body["error"]


async def test_cursor_pagination_returns_every_request_once(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    written = [await write(http, tenang.gateway_url, f"KB-PAGE{i}") for i in range(25)]
    seen: list[str] = []
    pages: list[int] = []
    url = f"{tenang.admin_url}/api/v1/requests?limit=10"
    cursor: str | None = None
    while True:
        doc = await api(http, "GET", url + (f"&cursor={cursor}" if cursor else ""))
        pages.append(len(doc["items"]))
        seen += [item["id"] for item in doc["items"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "pagination does not terminate"
    assert pages == [10, 10, 5]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == set(written)
    assert seen == sorted(seen, reverse=True)  # newest first


async def test_summary_counts_by_status_per_upstream(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    config = two_upstreams(make_config(tmp_path, bpjs_sim.url, breaker={"fail_max": 100}),
                           bpjs_sim.url)
    tenang = await start_tenang(config)
    summary_url = f"{tenang.admin_url}/api/v1/summary"

    first = (await api(http, "GET", summary_url))["upstreams"]
    assert set(first) == {"antrean", "vclaim"}
    for up in first.values():
        assert set(up["counts"].values()) == {0}
        assert up["oldest_pending_age_s"] is None
        assert up["last_attempt_at"] is None
        assert up["breaker"]["state"] == "closed"

    await bpjs_sim.fault("antrean/add", "reject")
    rejected = await write(http, tenang.gateway_url, "KB-SUM-REJ")
    await wait_status(http, tenang.admin_url, rejected, "failed")
    for kb in ("KB-SUM-OK1", "KB-SUM-OK2"):
        await wait_status(http, tenang.admin_url, await write(http, tenang.gateway_url, kb),
                          "succeeded")
    await bpjs_sim.set_mode(**OUTAGE)
    before_pending = time.time()
    await write(http, tenang.gateway_url, "KB-SUM-DOWN")

    snapshot: dict[str, Any] = {}

    async def settled() -> bool:
        snapshot.update(await api(http, "GET", summary_url))
        counts = snapshot["upstreams"]["antrean"]["counts"]
        return (counts["pending"], counts["failed"], counts["succeeded"]) == (1, 1, 2) and \
            snapshot["upstreams"]["antrean"]["last_outcome"] == "transient"

    await wait_until(settled, what="summary with one pending, one failed, two succeeded")
    antrean = snapshot["upstreams"]["antrean"]
    assert antrean["counts"] == {"pending": 1, "in_flight": 0, "succeeded": 2, "failed": 1,
                                 "dead": 0, "held": 0, "cancelled": 0}
    age = antrean["oldest_pending_age_s"]
    generated = parse_iso(snapshot["generated_at"])
    assert 0 <= age <= generated - before_pending + 0.01
    assert before_pending - 0.01 <= parse_iso(antrean["last_attempt_at"]) <= generated
    assert antrean["breaker"]["state"] == "closed"
    vclaim = snapshot["upstreams"]["vclaim"]
    assert set(vclaim["counts"].values()) == {0}
    assert vclaim["last_attempt_at"] is None


async def test_retry_a_failed_request_delivers_it(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    await bpjs_sim.fault("antrean/add", "reject")  # refuses the first send only
    request_id = await write(http, tenang.gateway_url, "KB-RETRY")
    failed = await wait_status(http, tenang.admin_url, request_id, "failed")
    assert failed["attempt_count"] == 1

    doc = await api(http, "POST", f"{tenang.admin_url}/api/v1/requests/{request_id}/retry")
    assert doc["id"] == request_id
    assert doc["status"] in ("pending", "in_flight", "succeeded")
    done = await wait_status(http, tenang.admin_url, request_id, "succeeded")
    assert done["attempt_count"] == 2
    assert [a["outcome"] for a in done["attempts"]] == ["permanent", "success"]
    assert [(e["fault"], e["outcome"]) for e in bpjs_sim.state.log] == [
        ("reject", "fault"), (None, "ok")]
    assert applied(bpjs_sim)["KB-RETRY/add"] == 1

    body = await api(http, "POST", f"{tenang.admin_url}/api/v1/requests/{request_id}/retry",
                     expect=409)
    assert body["error"]
    again = await api(http, "GET", f"{tenang.admin_url}/api/v1/requests/{request_id}")
    assert again["status"] == "succeeded"


async def test_cancel_a_pending_request(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    request_id = await write(http, tenang.gateway_url, "KB-CANCEL")
    url = f"{tenang.admin_url}/api/v1/requests/{request_id}"

    doc = await api(http, "POST", f"{url}/cancel")
    assert doc["status"] == "cancelled"
    assert (await api(http, "GET", url))["status"] == "cancelled"

    body = await api(http, "POST", f"{url}/cancel", expect=409)
    assert body["error"]
    await api(http, "POST", f"{url}/retry", expect=409)
    assert (await api(http, "GET", url))["status"] == "cancelled"
