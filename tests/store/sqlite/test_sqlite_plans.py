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

from proxy.store.sqlite.queries import QUERIES, with_ids
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
    "claim_due": (QUERIES["claim_due"], ("o", NOW + 30, NOW, "antrean", NOW, 64),
                  "requests_due (upstream=? AND status=? AND next_attempt_at<?)"),
    "claim_due (probe)": (QUERIES["claim_due_clean"], ("o", NOW + 30, NOW, "antrean", NOW, 1),
                          "requests_due (upstream=? AND status=? AND next_attempt_at<?)"),
    "next_due_at": (QUERIES["next_due_at"], ("antrean",), "requests_due (upstream=? AND status=?)"),
    # relay lane, once per poll interval
    "take_over_expired": (QUERIES["take_over_expired"], ("o", NOW + 30, NOW, "antrean", NOW),
                          "requests_due (upstream=? AND status=?)"),
    "refresh_holds (release)": (QUERIES["release_held"], (NOW, NOW, "released", "antrean"),
                                "requests_due (upstream=? AND status=?)"),
    "refresh_holds (hold)": (QUERIES["hold_behind_stuck"], (NOW, "held behind ", "antrean",
                                                            "antrean"),
                             "requests_ordering (ordering_key=?)"),
    # intake, per request
    "count_queued (backpressure)": (QUERIES["count_queued"], ("antrean",),
                                    "request_counts USING PRIMARY KEY (upstream=?"),
    "enqueue_or_match": (QUERIES["request_by_dedup_key"], ("k",), "requests_dedup (dedup_key=?)"),
    "live_coalesced": (QUERIES["live_coalesced"], ("k",), "requests_coalesce (coalesce_key=?)"),
    "supersede": (with_ids(QUERIES["supersede"], 2), ("r", NOW, "01H", "01J"), "id=?)"),
    # summary: /metrics, /api/v1/summary, dashboard, notifier
    "summary (counts)": (QUERIES["summary_counts"], (), "SCAN request_counts"),
    "summary (oldest, last attempt)": (QUERIES["summary_firsts"], (),
                                       "requests_waiting (upstream=?)"),
    "sep_open_counts": (QUERIES["sep_open_counts"], (), "SCAN request_counts"),
    "attempt_buckets (dashboard chart)": (
        QUERIES["attempt_buckets"], (NOW - 21_600, 900.0, "antrean", NOW - 21_600),
        "attempts_upstream_time (upstream=? AND started_at>?)"),
    # callback sender
    "claim_callbacks": (QUERIES["claim_callbacks"], (NOW + 30, NOW, NOW, NOW, 16),
                        "callbacks_due (status=?"),
    "next_callback_at": (QUERIES["next_callback_at"], (), "callbacks_due (status=?)"),
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
    steps = plan(conn, QUERIES["summary_firsts"], ())
    assert sum("attempts_upstream_time (upstream=?)" in step for step in steps) == 2, steps
    assert not any("TEMP B-TREE" in step for step in steps), steps


def test_the_hold_refresh_starts_from_the_stuck_requests(conn: sqlite3.Connection) -> None:
    steps = plan(conn, QUERIES["hold_behind_stuck"], (NOW, "held behind ", "antrean", "antrean"))
    # The outer walk is over the stuck requests' ordering keys, never the pending range.
    assert steps[0] == "SEARCH requests USING INDEX requests_ordering (ordering_key=?)", steps
    assert any("SEARCH s USING INDEX requests_due (upstream=? AND status=?)" in step
               for step in steps), steps
