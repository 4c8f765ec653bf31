"""SQLite query plans of every recurring query (the relay's housekeeping and claims, intake's
per-request lookups, the summary behind /metrics, /api/v1/summary and the dashboard, the
callback sender): each one seeks an index and reads what it finds, never every pending
row, so its cost does not grow with the backlog. Timings at 1,000,000 pending:
bench/scale_bench.py and bench/RESULTS.md."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from proxy.store.sqlite import intake, queue
from proxy.store.sqlite import log as request_log
from proxy.store.sqlite import outbox as cb
from proxy.store.sqlite.log import _ATTEMPT_BUCKETS, _SEP_OPEN
from proxy.store.sqlite.schema import migrate

NOW = 1_700_000_000.0
# Tables that grow with the backlog or with history: none may be walked whole.
GROWING = ("requests", "attempts", "callbacks", "audit_log")


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    c = sqlite3.connect(Path(tmp_path_factory.mktemp("plans")) / "plan.db")
    migrate(c)
    return c


def plan(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[str]:
    return [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def scans(steps: list[str]) -> list[str]:
    """Steps that read a growing table from end to end (an alias counts as its table)."""
    return [step for step in steps if step.startswith("SCAN ")
            and "request_counts" not in step and not step.startswith("SCAN u")]


RECURRING: dict[str, tuple[str, tuple[Any, ...], str]] = {
    # relay lane, every claim and every idle wait
    "claim_due": (queue._CLAIM, ("o", NOW + 30, NOW, "antrean", NOW, 64),
                  "requests_due (upstream=? AND status=? AND next_attempt_at<?)"),
    "claim_due (probe)": (queue._CLAIM_CLEAN, ("o", NOW + 30, NOW, "antrean", NOW, 1),
                          "requests_due (upstream=? AND status=? AND next_attempt_at<?)"),
    "next_due_at": (queue._NEXT_DUE, ("antrean",), "requests_due (upstream=? AND status=?)"),
    # relay lane, once per poll interval
    "take_over_expired": (queue._TAKE_OVER, ("o", NOW + 30, NOW, "antrean", NOW),
                          "requests_due (upstream=? AND status=?)"),
    "refresh_holds (release)": (queue._RELEASE, (NOW, NOW, "released", "antrean"),
                                "requests_due (upstream=? AND status=?)"),
    "refresh_holds (hold)": (queue._HOLD, (NOW, "held behind ", "antrean", "antrean"),
                             "requests_ordering (ordering_key=?)"),
    # intake, per request
    "count_queued (backpressure)": (intake._QUEUED, ("antrean",),
                                    "request_counts USING PRIMARY KEY (upstream=?"),
    "enqueue_or_match": (intake._BY_DEDUP, ("k",), "requests_dedup (dedup_key=?)"),
    "live_coalesced": (queue._LIVE_COALESCED, ("k",), "requests_coalesce (coalesce_key=?)"),
    "supersede": (queue._SUPERSEDE.format("?,?"), ("r", NOW, "01H", "01J"), "id=?)"),
    # summary: /metrics, /api/v1/summary, dashboard, notifier
    "summary (counts)": (request_log._COUNTS, (), "SCAN request_counts"),
    "summary (oldest, last attempt)": (request_log._FIRSTS, (), "requests_waiting (upstream=?)"),
    "sep_open_counts": (_SEP_OPEN, (), "SCAN request_counts"),
    "attempt_buckets (dashboard chart)": (
        _ATTEMPT_BUCKETS, (NOW - 21_600, 900.0, "antrean", NOW - 21_600),
        "attempts_upstream_time (upstream=? AND started_at>?)"),
    # callback sender
    "claim_callbacks": (cb._CLAIM, (NOW + 30, NOW, NOW, NOW, 16), "callbacks_due (status=?"),
    "next_callback_at": (cb._NEXT, (), "callbacks_due (status=?)"),
}


@pytest.mark.parametrize("name", sorted(RECURRING))
def test_a_recurring_query_seeks_an_index(conn: sqlite3.Connection, name: str) -> None:
    sql, params, expected = RECURRING[name]
    steps = plan(conn, sql, params)
    assert any(expected in step for step in steps), steps
    assert scans(steps) == [], steps
    assert not any(f"SCAN {table}" in step for step in steps for table in GROWING), steps


def test_the_summary_reads_attempts_by_index_for_each_upstream(
        conn: sqlite3.Connection) -> None:
    steps = plan(conn, request_log._FIRSTS, ())
    assert sum("attempts_upstream_time (upstream=?)" in step for step in steps) == 2, steps
    assert not any("TEMP B-TREE" in step for step in steps), steps


def test_the_hold_refresh_starts_from_the_stuck_requests(conn: sqlite3.Connection) -> None:
    steps = plan(conn, queue._HOLD, (NOW, "held behind ", "antrean", "antrean"))
    # The outer walk is over the stuck requests' ordering keys, never the pending range.
    assert steps[0] == "SEARCH requests USING INDEX requests_ordering (ordering_key=?)", steps
    assert any("SEARCH s USING INDEX requests_due (upstream=? AND status=?)" in step
               for step in steps), steps
