"""Reading and tampering with a SQLite store's hash chain by hand, as the tests of
``tenang audit verify`` do: its entries live in the chain table and, for requests stored
by intake, in their own rows (schema v14, ``proxy.store.sqlite.chain_rows``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from proxy.store import chain
from proxy.store.chain import ChainEntry
from proxy.store.sqlite.chain_rows import entries_after
from proxy.store.sqlite.queries import QUERIES, with_ids


def entries(conn: sqlite3.Connection) -> list[ChainEntry]:
    """Every entry, in seq order."""
    return entries_after(conn, 0, 1 << 62)


def entries_of(db: Path) -> list[ChainEntry]:
    conn = sqlite3.connect(db)
    try:
        return entries(conn)
    finally:
        conn.close()


def set_leaf(conn: sqlite3.Connection, seq: int, leaf: bytes) -> None:
    _set(conn, seq, "leaf", leaf)


def set_head(conn: sqlite3.Connection, seq: int, head: bytes) -> None:
    _set(conn, seq, "head", head)


def _set(conn: sqlite3.Connection, seq: int, column: str, value: bytes) -> None:
    n = conn.execute(f"UPDATE chain SET {column}=? WHERE seq=?", (value, seq)).rowcount
    n += conn.execute(f"UPDATE requests SET chain_{column}=? WHERE chain_seq=?",
                      (value, seq)).rowcount
    assert n == 1, f"no entry seq {seq}"


def delete_entry(conn: sqlite3.Connection, seq: int) -> None:
    n = conn.execute("DELETE FROM chain WHERE seq=?", (seq,)).rowcount
    n += conn.execute("UPDATE requests SET chain_seq=NULL, chain_leaf=NULL, chain_head=NULL "
                      "WHERE chain_seq=?", (seq,)).rowcount
    assert n == 1, f"no entry seq {seq}"


def relink(conn: sqlite3.Connection) -> None:
    """Every head recomputed from the leaves as they are: a forger covering a change."""
    previous = chain.GENESIS
    for e in entries(conn):
        previous = chain.linked(previous, e.leaf)
        set_head(conn, e.seq, previous)


def forge_tombstone(conn: sqlite3.Connection, request_id: str, at: float) -> None:
    """Mark a request's entry purged as the store's purge does (the row's own entry
    moves to the chain table), though no purge happened."""
    conn.execute(with_ids(QUERIES["tombstone_row_entries"], 1), (at, request_id))
    conn.execute(with_ids(QUERIES["clear_row_entries"], 1), (request_id,))
    conn.execute(with_ids(QUERIES["mark_purged"], 1), (at, chain.Kind.REQUEST.value,
                                                        request_id))
