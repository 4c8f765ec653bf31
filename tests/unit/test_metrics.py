"""Metrics: every family with the right values, separate registries, scrape-time queue
gauges from the store summary (cached), and the /metrics route with its token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from proxy.lifecycle import Status, Verdict
from proxy.observe.metrics import Metrics, add_metrics_route
from proxy.policies.breaker import BreakerState
from proxy.store.errors import StoreUnavailable
from proxy.store.records import UpstreamSummary

T0 = 1_800_000_000.0
CLOSED, HALF, OPEN = BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, frozenset(labels.items()))]


def has(text: str, name: str, **labels: str) -> bool:
    return (name, frozenset(labels.items())) in samples(text)


async def render(m: Metrics) -> str:
    return (await m.render()).decode()


async def test_event_metrics_count_and_time() -> None:
    m = Metrics(["antrean", "vclaim"])
    m.accepted("antrean", "antrean.add", 0.004)
    m.accepted("antrean", "antrean.add", 0.02)
    m.accepted("antrean", None, 0.001)
    m.attempt("antrean", Verdict.TRANSIENT, 2.0)
    m.attempt("antrean", Verdict.SUCCESS, 0.3)
    m.attempt("vclaim", Verdict.PERMANENT, 0.1)
    text = await render(m)
    assert value(text, "tenang_requests_accepted_total", upstream="antrean",
                 endpoint="antrean.add") == 2
    assert value(text, "tenang_requests_accepted_total", upstream="antrean",
                 endpoint="other") == 1
    assert value(text, "tenang_intake_duration_seconds_count") == 3
    assert value(text, "tenang_intake_duration_seconds_sum") == pytest.approx(0.025)
    assert value(text, "tenang_intake_duration_seconds_bucket", le="0.005") == 2
    assert value(text, "tenang_deliveries_total", upstream="antrean", outcome="transient") == 1
    assert value(text, "tenang_deliveries_total", upstream="antrean", outcome="success") == 1
    assert value(text, "tenang_deliveries_total", upstream="antrean", outcome="duplicate") == 0
    assert value(text, "tenang_deliveries_total", upstream="vclaim", outcome="permanent") == 1
    assert value(text, "tenang_delivery_attempt_duration_seconds_count",
                 upstream="antrean") == 2
    assert value(text, "tenang_delivery_attempt_duration_seconds_bucket", upstream="antrean",
                 le="0.5") == 1


async def test_circuit_state_and_transitions() -> None:
    m = Metrics(["antrean", "vclaim"])
    text = await render(m)
    assert value(text, "tenang_circuit_state", upstream="antrean") == 0
    assert value(text, "tenang_circuit_transitions_total", upstream="antrean", to="open") == 0
    for old, new in ((CLOSED, OPEN), (OPEN, HALF), (HALF, OPEN), (OPEN, HALF)):
        m.breaker_changed("antrean", old, new)
    text = await render(m)
    assert value(text, "tenang_circuit_state", upstream="antrean") == 1
    assert value(text, "tenang_circuit_transitions_total", upstream="antrean", to="open") == 2
    assert value(text, "tenang_circuit_transitions_total", upstream="antrean",
                 to="half-open") == 2
    m.breaker_changed("antrean", HALF, CLOSED)
    m.breaker_changed("vclaim", CLOSED, OPEN)
    text = await render(m)
    assert value(text, "tenang_circuit_state", upstream="antrean") == 0
    assert value(text, "tenang_circuit_state", upstream="vclaim") == 2
    assert value(text, "tenang_circuit_transitions_total", upstream="antrean", to="closed") == 1


async def test_registries_are_per_instance() -> None:
    a, b = Metrics(["antrean"]), Metrics(["antrean"])
    a.accepted("antrean", "x", 0.01)
    assert not has(await render(b), "tenang_requests_accepted_total", upstream="antrean",
                   endpoint="x")


async def test_queue_gauges_come_from_the_summary_at_scrape_time() -> None:
    calls = 0

    async def summary() -> dict[str, UpstreamSummary]:
        nonlocal calls
        calls += 1
        return {"antrean": UpstreamSummary(
            counts={Status.PENDING: 7, Status.DEAD: 2, Status.SUCCEEDED: 40},
            oldest_pending_at=T0 - 90)}

    m = Metrics(["antrean", "vclaim"], clock=lambda: T0)
    m.watch_store(summary)
    m.watch_maintenance(lambda up: up == "vclaim")
    text = await render(m)
    assert value(text, "tenang_queue_depth", upstream="antrean", status="pending") == 7
    assert value(text, "tenang_queue_depth", upstream="antrean", status="dead") == 2
    assert value(text, "tenang_queue_depth", upstream="antrean", status="held") == 0
    assert value(text, "tenang_queue_depth", upstream="vclaim", status="pending") == 0
    assert value(text, "tenang_oldest_pending_age_seconds", upstream="antrean") == 90
    assert value(text, "tenang_oldest_pending_age_seconds", upstream="vclaim") == 0
    assert value(text, "tenang_maintenance_active", upstream="vclaim") == 1
    assert value(text, "tenang_maintenance_active", upstream="antrean") == 0
    # Scrapes within a second share one summary: a busy dashboard cannot load the DB.
    for _ in range(20):
        await m.render()
    assert calls == 1
    m.summary_ttl_s = 0
    await m.render()
    assert calls == 2


async def test_store_failure_leaves_queue_gauges_out_but_still_answers() -> None:
    async def broken() -> dict[str, UpstreamSummary]:
        raise StoreUnavailable("locked")

    m = Metrics(["antrean"])
    m.watch_store(broken)
    text = await render(m)
    assert "tenang_queue_depth" not in text
    assert value(text, "tenang_circuit_state", upstream="antrean") == 0


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Metrics]]:
    m = Metrics(["antrean"])
    app = web.Application()
    add_metrics_route(app, m, "scrape-token")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/metrics", m
    await runner.cleanup()


async def test_metrics_route_needs_its_token(served: tuple[str, Metrics]) -> None:
    url, m = served
    m.accepted("antrean", "antrean.add", 0.01)
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 401
        async with http.get(url, headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401
        async with http.get(url, headers={"Authorization": "Bearer scrape-token"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
    assert value(text, "tenang_requests_accepted_total", upstream="antrean",
                 endpoint="antrean.add") == 1


async def test_metrics_route_refuses_a_non_utf8_authorization_with_401(
        served: tuple[str, Metrics]) -> None:
    url, _ = served
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Authorization: Bearer scrape-token\xff\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
