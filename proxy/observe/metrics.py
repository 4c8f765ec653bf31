"""Prometheus metrics, one registry per Tenang (tests run several side by side).

Event counters and histograms are fed through ``Metrics``' methods, which intake and
the relay call (see ``proxy.observe.observer``). Queue depth and the oldest pending age are read
from ``store.summary()`` when Prometheus scrapes, at most once a second however often
it scrapes, so a busy dashboard cannot load the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from proxy.app_keys import METRICS, METRICS_TOKEN
from proxy.lifecycle import Status, Verdict
from proxy.policies.breaker import BreakerState
from proxy.store.errors import StoreError
from proxy.store.records import UpstreamSummary
from proxy.tokens import bearer_matches

log = logging.getLogger("tenang.metrics")

CIRCUIT_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
SUMMARY_TTL_S = 1.0
# Intake is a commit (ms); an attempt is a BPJS round trip (up to timeout_s).
INTAKE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                  2.5, 5.0)
ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
NO_ENDPOINT = "other"  # requests no endpoint rule named

SummarySource = Callable[[], Awaitable[Mapping[str, UpstreamSummary]]]
ActiveSource = Callable[[str], bool]


class _QueueCollector(Collector):
    """Gauges computed from the latest store summary (refreshed before each scrape)."""

    def __init__(self, upstreams: Iterable[str], clock: Callable[[], float],
                 ttl_s: float) -> None:
        self.upstreams = tuple(upstreams)
        self.clock = clock
        self.ttl_s = ttl_s
        self.source: SummarySource | None = None
        self.in_maintenance: ActiveSource | None = None
        self._snapshot: tuple[Mapping[str, UpstreamSummary], float] | None = None
        self._fetched_at: float | None = None  # time.monotonic() of the last fetch
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._fetched_at is not None and \
            time.monotonic() - self._fetched_at < self.ttl_s

    async def refresh(self) -> None:
        if self.source is None or self._fresh():
            return
        async with self._lock:  # concurrent scrapes share one query
            if self._fresh():
                return
            try:
                self._snapshot = (await self.source(), self.clock())
            except StoreError as exc:
                # The scrape still answers; the queue gauges are missing until the store
                # is back, which the "Tenang down / not ready" alerts cover.
                log.error("metrics: store summary unavailable: %s", exc)
                self._snapshot = None
            self._fetched_at = time.monotonic()

    def describe(self) -> Iterable[Metric]:
        return []  # families vary with the snapshot; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        if self._snapshot is not None:
            yield from self._queue_families(*self._snapshot)
        if self.in_maintenance is not None:
            active = GaugeMetricFamily(
                "tenang_maintenance_active", "1 while a maintenance window holds the "
                "upstream's circuit open", labels=["upstream"])
            for name in self.upstreams:
                active.add_metric([name], 1.0 if self.in_maintenance(name) else 0.0)
            yield active

    def _queue_families(self, summary: Mapping[str, UpstreamSummary],
                        now: float) -> Iterator[Metric]:
        depth = GaugeMetricFamily("tenang_queue_depth", "Stored requests by status",
                                  labels=["upstream", "status"])
        oldest = GaugeMetricFamily(
            "tenang_oldest_pending_age_seconds",
            "Age of the oldest pending request (0 when none is pending)", labels=["upstream"])
        for name in sorted(set(self.upstreams) | set(summary)):
            s = summary.get(name, UpstreamSummary())
            for status in Status:
                depth.add_metric([name, status.value], float(s.counts.get(status, 0)))
            at = s.oldest_pending_at
            oldest.add_metric([name], 0.0 if at is None else max(0.0, now - at))
        yield depth
        yield oldest


class Metrics:
    """Every Tenang metric, in a registry of its own."""

    def __init__(self, upstreams: Iterable[str], *, clock: Callable[[], float] = time.time,
                 registry: CollectorRegistry | None = None,
                 summary_ttl_s: float = SUMMARY_TTL_S) -> None:
        self.upstreams = tuple(upstreams)
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._accepted = Counter("tenang_requests_accepted", "Requests stored and answered "
                                 "202", ["upstream", "endpoint"], registry=r)
        self._accepted_children: dict[tuple[str, str], Any] = {}
        self._attempt_children: dict[tuple[str, Verdict], tuple[Any, Any]] = {}
        self._intake = Histogram("tenang_intake_duration_seconds", "Intake time from request "
                                 "to committed row", buckets=INTAKE_BUCKETS, registry=r)
        self._deliveries = Counter("tenang_deliveries", "Delivery attempts by verdict",
                                   ["upstream", "outcome"], registry=r)
        self._attempt = Histogram("tenang_delivery_attempt_duration_seconds", "Duration of "
                                  "one delivery attempt", ["upstream"],
                                  buckets=ATTEMPT_BUCKETS, registry=r)
        self._circuit = Gauge("tenang_circuit_state", "Circuit breaker: 0 closed, "
                              "1 half-open, 2 open", ["upstream"], registry=r)
        self._transitions = Counter("tenang_circuit_transitions", "Circuit breaker state "
                                    "changes by new state", ["upstream", "to"], registry=r)
        self._reconciled = Counter("tenang_reconciliation_reads", "History reads settling "
                                   "an unanswered SEP insert, by what they found: found, "
                                   "absent, unknown (held for a person) or unreachable "
                                   "(read again later)", ["upstream", "result"], registry=r)
        self._reads = Counter("tenang_passthrough_reads", "Passthrough reads by who "
                              "answered: upstream, stale-cache or fallback (Tenang's fast "
                              "failure)", ["upstream", "endpoint", "answer"], registry=r)
        self._read_seconds = Histogram("tenang_passthrough_duration_seconds", "Time to "
                                       "answer a passthrough read", ["upstream"],
                                       buckets=ATTEMPT_BUCKETS, registry=r)
        self._refused = Counter("tenang_intake_refused", "Calls refused at intake for the "
                                "caller's BPJS credentials, by reason: missing-header, "
                                "cons-id, signature, timestamp, user-key",
                                ["upstream", "reason"], registry=r)
        self._notifications = Counter("tenang_notifications", "Admin notifications by "
                                      "channel and result (sent, failed, dropped)",
                                      ["channel", "result"], registry=r)
        self._queue = _QueueCollector(self.upstreams, clock, summary_ttl_s)
        r.register(self._queue)
        for name in self.upstreams:
            # Present from the start at zero, so rate() and increase() see the first event.
            self._circuit.labels(name).set(0)
            self._attempt.labels(name)
            self._read_seconds.labels(name)
            for verdict in Verdict:
                self._deliveries.labels(name, verdict.value)
            for state in BreakerState:
                self._transitions.labels(name, state.value)

    @property
    def summary_ttl_s(self) -> float:
        """How long one store summary serves scrapes (tests set 0 for exact values)."""
        return self._queue.ttl_s

    @summary_ttl_s.setter
    def summary_ttl_s(self, seconds: float) -> None:
        self._queue.ttl_s = seconds

    # --- the observer seam (intake, relay, breakers) -----------------------------------

    def accepted(self, upstream: str, endpoint: str | None, seconds: float) -> None:
        # Called for every accepted request: the labelled child is looked up once (labels()
        # builds and validates a key each call), not per request.
        key = (upstream, endpoint or NO_ENDPOINT)
        child = self._accepted_children.get(key)
        if child is None:
            child = self._accepted_children[key] = self._accepted.labels(*key)
        child.inc()
        self._intake.observe(seconds)

    def attempt(self, upstream: str, verdict: Verdict, seconds: float) -> None:
        # Every delivery attempt (thousands a second in a drain): children looked up once.
        key = (upstream, verdict)
        children = self._attempt_children.get(key)
        if children is None:
            children = self._attempt_children[key] = (
                self._deliveries.labels(upstream, verdict.value), self._attempt.labels(upstream))
        children[0].inc()
        children[1].observe(seconds)

    def reconciled(self, upstream: str, settlement: str) -> None:
        self._reconciled.labels(upstream, settlement).inc()

    def refused(self, upstream: str, reason: str) -> None:
        self._refused.labels(upstream, reason).inc()

    def read(self, upstream: str, endpoint: str, answer: str, seconds: float) -> None:
        self._reads.labels(upstream, endpoint, answer).inc()
        self._read_seconds.labels(upstream).observe(seconds)

    def breaker_changed(self, upstream: str, old: BreakerState, new: BreakerState) -> None:
        self._circuit.labels(upstream).set(CIRCUIT_VALUE[new])
        if old is not new:  # pybreaker re-announces "open" when a probe fails
            self._transitions.labels(upstream, new.value).inc()
        else:
            self._transitions.labels(upstream, new.value)

    def notification(self, channel: str, result: str) -> None:
        """A notifier's ``on_result`` hook."""
        self._notifications.labels(channel, result).inc()

    # --- scrape-time sources --------------------------------------------------------------

    def watch_store(self, summary: SummarySource) -> None:
        """Report queue depth and oldest pending age from ``summary`` at scrape time."""
        self._queue.source = summary

    def watch_maintenance(self, active: ActiveSource) -> None:
        """Report ``tenang_maintenance_active`` from ``active(upstream)`` at scrape time."""
        self._queue.in_maintenance = active

    async def render(self) -> bytes:
        """The text exposition, with the store-derived gauges at most 1 s old."""
        await self._queue.refresh()
        return generate_latest(self.registry)


async def metrics_handler(request: web.Request) -> web.Response:
    token = request.app[METRICS_TOKEN]
    if token and not bearer_matches(request.headers.get("Authorization"), token):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    body = await request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_metrics_route(app: web.Application, metrics: Metrics, token: str | None) -> None:
    """``GET /metrics`` on ``app`` (the admin app); ``token``: required bearer token."""
    app[METRICS] = metrics
    app[METRICS_TOKEN] = token or ""
    app.router.add_get("/metrics", metrics_handler)
