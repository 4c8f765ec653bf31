"""SQLite query plans of the request-log queries: every one walks an index in id order
(never sorts the matches), so a page costs the same at a million rows as at a hundred.
Timings at 1,000,000 rows: bench/admin_search_bench.py and bench/RESULTS.md."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.lifecycle import Status
from proxy.store.records import RequestFilter
from proxy.store.sqlite.log import _indexed, _residual
from proxy.store.sqlite.queries import QUERIES, with_where
from proxy.store.sqlite.schema import migrate

T0 = 1_700_000_000.0
CURSOR = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = sqlite3.connect(tmp_path / "plan.db")
    migrate(c)
    return c


def plan(conn: sqlite3.Connection, f: RequestFilter, cursor: str | None,
         lowest: str | None = None) -> str:
    where, params = _indexed(f, cursor, lowest)
    rest, rest_params = _residual(f)
    rows = conn.execute("EXPLAIN QUERY PLAN "
                        + with_where(QUERIES["find_requests"], where + rest),
                        (*params, *rest_params, 51)).fetchall()
    return " | ".join(r[3] for r in rows)


@pytest.mark.parametrize("f", [
    RequestFilter(),
    RequestFilter(received_from=T0, received_to=T0 + 86_400),
    RequestFilter(upstream="vclaim"),
    RequestFilter(upstream="vclaim", endpoint="vclaim.sep", text="0001234567890"),
], ids=["all", "day", "upstream", "scan"])
@pytest.mark.parametrize("cursor", [None, CURSOR], ids=["first", "next"])
def test_without_status_the_primary_key_is_walked(conn: sqlite3.Connection, f: RequestFilter,
                                                  cursor: str | None) -> None:
    p = plan(conn, f, cursor)
    assert "sqlite_autoindex_requests_1" in p, p
    assert "TEMP B-TREE" not in p, p


@pytest.mark.parametrize("f", [
    RequestFilter(status=Status.DEAD),
    RequestFilter(status=Status.FAILED, upstream="antrean"),
    RequestFilter(status=Status.HELD, received_from=T0, text="KB-1"),
], ids=["status", "status+upstream", "status+time+text"])
def test_with_a_status_its_index_is_walked(conn: sqlite3.Connection, f: RequestFilter) -> None:
    for cursor in (None, CURSOR):
        p = plan(conn, f, cursor, lowest="01H0000000000000000000000" if f.text else None)
        assert "requests_status" in p, p
        assert "TEMP B-TREE" not in p, p


def test_one_bound_per_side_of_the_id_range() -> None:
    f = RequestFilter(received_from=T0, received_to=T0 + 60)
    where, params = _indexed(f, CURSOR, "01J0000000000000000000000Z")
    assert where == ["id<?", "id>=?"]
    assert params[1] == "01J0000000000000000000000Z"
    where, params = _indexed(f, "00000000000000000000000000")
    assert params[0] == "00000000000000000000000000", "the tighter upper bound"
