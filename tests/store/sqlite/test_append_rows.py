"""The writer's chain rows go in as a few multi-row INSERTs (``writer.append_rows``):
every row, in order, whatever the count, from a handful of distinct statements."""

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
    # One statement per power of two in n (at most APPEND_CHUNK rows each), largest first:
    # so few distinct statements are ever prepared.
    sizes = [s.count("),(") + 1 for s in statements]
    assert sum(sizes) == n
    assert len(sizes) == n // APPEND_CHUNK + bin(n % APPEND_CHUNK).count("1")
    assert sizes == sorted(sizes, reverse=True)
    assert all(size & (size - 1) == 0 and size <= APPEND_CHUNK for size in sizes)
