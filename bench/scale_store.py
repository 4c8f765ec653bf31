"""Builds a SQLite store holding N pending requests, fast (SQL, not HTTP).

The rows are what intake stores for an Antrean ``antrean/add`` booking during an outage
(the drain benchmark's body, one booking each): the same columns, endpoint, ordering and
dedup keys, ids minted from receive
times spread over the last ``span_s`` seconds (oldest first, as they arrived), every one
pending and due. ``executemany`` in transactions of ``BATCH`` rows with
``synchronous=OFF`` while building (the file is synced once at the end).

    .venv/bin/python bench/scale_store.py /tmp/tenang-1m.db --n 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.drain_bench import booking
from proxy.ids import next_request_id
from proxy.lifecycle import Status
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.rows import count_inserted
from proxy.store.sqlite.schema import migrate

BATCH = 50_000
UPSTREAM = "antrean"
PATH = "/antreanrs/antrean/add"
# What intake keeps of a SIMRS's headers (never its X-signature: the relay re-signs).
HEADERS = json.dumps([["Content-Type", "application/json"], ["X-cons-id", "12345"],
                      ["user_key", "0123456789abcdef0123456789abcdef"]],
                     separators=(",", ":"))


def rows(n: int, now: float, span_s: float, tag: str,
         status: Status = Status.PENDING) -> Iterator[tuple[Any, ...]]:
    step = span_s / max(n, 1)
    head, tail = booking("@K@").split(b"@K@")
    for i in range(n):
        at = now - span_s + i * step
        code = f"SCL{tag}{i:08d}"
        body = head + code.encode() + tail
        yield (next_request_id(at), UPSTREAM, "POST", PATH, "", HEADERS, body, at,
               status.value, at, at, "antrean.add", f"{UPSTREAM}:kodebooking={code}", None,
               f"{UPSTREAM}:antrean.add:kodebooking={code}", None, None, None,
               None)  # key_id: stored in plaintext, as before encryption at rest


def build(path: Path, n: int, *, span_s: float = 6 * 3600.0, tag: str = "S",
          status: Status = Status.PENDING, ended_at: float | None = None) -> float:
    """Create ``path`` (replacing it) with ``n`` requests in ``status`` (pending: every
    one due), received over the ``span_s`` seconds before ``ended_at`` (default now) and
    last changed then; returns seconds taken."""
    started = time.monotonic()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
        conn.execute("PRAGMA synchronous=OFF")
        batch: list[tuple[Any, ...]] = []
        end = time.time() if ended_at is None else ended_at
        for row in rows(n, end, span_s, tag, status):
            batch.append(row)
            if len(batch) == BATCH:
                _commit(conn, batch)
                batch = []
        if batch:
            _commit(conn, batch)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return time.monotonic() - started


def _commit(conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN")
    conn.executemany(QUERIES["insert_request"], batch)
    count_inserted(conn, batch)
    conn.execute("COMMIT")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path)
    p.add_argument("--n", type=int, default=1_000_000)
    args = p.parse_args()
    took = build(args.path, args.n)
    print(f"{args.n} pending requests in {args.path} in {took:.1f} s "
          f"({args.path.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
