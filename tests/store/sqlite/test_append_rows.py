"""The writer's chain rows go in as a few multi-row INSERTs (``writer.append_rows``):
every row, in order, whatever the count, one statement per APPEND_CHUNK rows."""

from __future__ import annotations

import sqlite3

import pytest

from proxy.store.sqlite.writer import APPEND_CHUNK, append_rows

SQL = "INSERT INTO t (a, b) VALUES (?,?)"


@pytest.mark.parametrize("n", [0, 1, 2, 3, 31, APPEND_CHUNK, APPEND_CHUNK + 1, 1000])
def test_every_row_is_inserted_in_order(n: int) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, a INTEGER, b BLOB)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    rows = [(i, bytes([i % 256])) for i in range(n)]

    append_rows(conn, SQL, rows)

    conn.set_trace_callback(None)
    assert conn.execute("SELECT a, b FROM t ORDER BY seq").fetchall() == rows
    # One statement per APPEND_CHUNK rows, each of exactly its rows.
    sizes = [s.count("),(") + 1 for s in statements]
    assert sizes == [min(APPEND_CHUNK, n - start) for start in range(0, n, APPEND_CHUNK)]
