"""The SQLite hash chain read as one sequence (schema v14): entries live in the chain
table, and a request stored by intake keeps its own entry in its row (``chain_seq``,
``chain_leaf``, ``chain_head``; ``writer.number_inserts``) until a purge moves it to the
chain table as its tombstone (``chain.mark_purged_in``): a row's entry is never purged.

The rows' entries have no index: the writer numbers the rows of a group commit in the
order it inserts them, one transaction after another, so along the rowid their seqs
rise (a row without an entry, NULL, may sit between). A seq is found by bisecting the
rowids. A store where they do not rise has been tampered with, and what a bisection
then misses, the walk reports as an entry missing.

Every function here reads one snapshot: call it on a connection inside a read
transaction (``read_only.in_snapshot``), or a commit between its statements could show a gap.
"""

from __future__ import annotations

import heapq
import sqlite3
from typing import Any

from proxy.store.chain import ChainEntry, Kind
from proxy.store.sqlite.queries import QUERIES


def _blob(value: Any) -> bytes:
    # A value written as text by hand (sqlite3 shell) must be checked, not crash the walk.
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def table_entry(r: Any) -> ChainEntry:
    """A ``chain`` row (seq, kind, ref, leaf, head, purged_at, record)."""
    return ChainEntry(seq=r[0], kind=Kind(r[1]), ref=r[2], leaf=_blob(r[3]), head=_blob(r[4]),
                      purged_at=r[5], record=None if r[6] is None else _blob(r[6]))


def _row_entry(r: Any) -> ChainEntry:
    """A request row's own entry (rowid, chain_seq, id, chain_leaf, chain_head)."""
    return ChainEntry(seq=r[1], kind=Kind.REQUEST, ref=r[2], leaf=_blob(r[3]),
                      head=_blob(r[4]))


def first_row_after(conn: sqlite3.Connection, after_seq: int) -> int | None:
    """The rowid of the first request row whose entry comes after ``after_seq``."""
    bounds = conn.execute(QUERIES["request_rowids"]).fetchone()
    if bounds is None or bounds[0] is None:
        return None
    lo, hi = bounds[0], bounds[1] + 1
    found = None
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(QUERIES["row_entry_from"], (mid,)).fetchone()
        if row is None:  # no entry at or after mid
            hi = mid
        elif row[1] > after_seq:
            found, hi = row[0], mid
        else:
            lo = row[0] + 1
    return found


def entries_after(conn: sqlite3.Connection, after_seq: int, limit: int) -> list[ChainEntry]:
    """Up to ``limit`` entries after ``after_seq``, in seq order, wherever they live."""
    in_table = [table_entry(r) for r in conn.execute(QUERIES["chain_entries"],
                                                      (after_seq, limit))]
    start = first_row_after(conn, after_seq)
    in_rows = [] if start is None else [
        _row_entry(r) for r in conn.execute(QUERIES["row_entries"], (start, after_seq, limit))]
    merged = heapq.merge(in_table, in_rows, key=lambda e: e.seq)
    return [e for _, e in zip(range(limit), merged, strict=False)]


def head_at(conn: sqlite3.Connection, seq: int) -> bytes | None:
    """The head at ``seq`` (None: no such entry)."""
    entries = entries_after(conn, seq - 1, 1)
    return entries[0].head if entries and entries[0].seq == seq else None
