"""deploy/: the Grafana dashboard and the Prometheus alert rules parse, cover what the
issue asks for, and use only metrics Tenang exports. With Debian's promtool installed
(package prometheus) the rules are also checked and their unit tests run."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.calls import Status, Verdict
from proxy.metrics import Metrics
from proxy.store.base import UpstreamSummary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
ALERTS = DEPLOY / "prometheus-alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus-alerts.test.yml"
METRIC = re.compile(r"\b(tenang_[a-z_]+)")
PROMTOOL = shutil.which("promtool")


def exposition() -> str:
    """Every family with at least one sample, as a scrape shows it."""
    m = Metrics(["antrean"])
    m.accepted("antrean", "antrean.add", 0.01)
    m.attempt("antrean", Verdict.SUCCESS, 0.2)
    m.notification("webhook", "sent")
    m.read("antrean", "antrean.ref", "fallback", 0.001)

    async def summary() -> dict[str, UpstreamSummary]:
        return {"antrean": UpstreamSummary(counts={Status.PENDING: 1}, oldest_pending_at=0.0)}

    m.watch_store(summary)
    m.watch_maintenance(lambda upstream: False)
    return asyncio.run(m.render()).decode()


def exported_series() -> set[str]:
    return {s.name for f in text_string_to_metric_families(exposition()) for s in f.samples}


def test_every_issue_metric_is_exported() -> None:
    series = exported_series()
    for name in ("tenang_requests_accepted_total", "tenang_intake_duration_seconds_bucket",
                 "tenang_deliveries_total", "tenang_delivery_attempt_duration_seconds_bucket",
                 "tenang_queue_depth", "tenang_oldest_pending_age_seconds",
                 "tenang_circuit_state", "tenang_circuit_transitions_total",
                 "tenang_passthrough_reads_total",
                 "tenang_passthrough_duration_seconds_bucket"):
        assert name in series, name


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_dashboard_parses_and_shows_what_ops_need() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert doc["uid"] and doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(dashboard_exprs())
    for needed in ("tenang_queue_depth", "tenang_oldest_pending_age_seconds",
                   "tenang_circuit_state", "tenang_deliveries_total",
                   "histogram_quantile(0.99, sum by (le) (rate(tenang_intake_duration_seconds",
                   "tenang_delivery_attempt_duration_seconds_bucket"):
        assert needed in exprs, needed


def test_dashboard_uses_only_exported_metrics() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert used - exported_series() == set()


def alert_blocks() -> dict[str, str]:
    text = ALERTS.read_text(encoding="utf-8")
    blocks = re.split(r"^      - alert: ", text, flags=re.M)[1:]
    return {b.split("\n", 1)[0].strip(): b for b in blocks}


def test_alert_rules_cover_the_issue_and_are_complete() -> None:
    text = ALERTS.read_text(encoding="utf-8")
    assert text.startswith("#") and "\ngroups:\n" in text and "\t" not in text
    blocks = alert_blocks()
    assert {"TenangDown", "TenangCircuitOpen", "TenangOldestPendingTooOld",
            "TenangDeadRequestsIncreasing"} <= set(blocks)
    for name, block in blocks.items():
        for key in ("expr:", "for:", "severity:", "summary:", "description:"):
            assert f"\n        {key}" in block or f"\n          {key}" in block, (name, key)


def test_alert_rules_use_only_exported_metrics() -> None:
    exprs = re.findall(r"^\s+expr: (.+)$", ALERTS.read_text(encoding="utf-8"), flags=re.M)
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used and used - exported_series() == set()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_lints_the_exposition() -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
