"""Request-log search at scale: the admin store verbs on a 1,000,000-row SQLite file.

Builds (once, reused afterwards) a database of realistic requests spread over 30 days,
then times each admin query through the SQLite backend (median of several runs, warm cache) and
prints its SQLite query plan. Figures and discussion: RESULTS.md, "Admin request-log
search".

    .venv/bin/python bench/admin_search_bench.py [--rows 1000000] [--db PATH] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.ids import new_request_id
from proxy.lifecycle import Status
from proxy.store.records import RequestFilter
from proxy.store.sqlite import sqlite_backend
from proxy.store.sqlite.log import _indexed, _residual
from proxy.store.sqlite.queries import QUERIES, with_where

DAY = 86_400.0
NOW = 1_764_300_000.0  # fixed, so a rebuilt file gives the same figures
RARE_CARD = "0009999999999"  # in 5 requests, spread over the month
STATUSES = [("succeeded", 0.93), ("failed", 0.02), ("dead", 0.01), ("pending", 0.02),
            ("held", 0.01), ("cancelled", 0.01)]
ENDPOINTS = [("antrean", "/antreanrs/antrean/add", "antrean.add"),
             ("antrean", "/antreanrs/antrean/updatewaktu", "antrean.updatewaktu"),
             ("vclaim", "/vclaim-rest/SEP/2.0/insert", "vclaim.sep.insert"),
             ("vclaim", "/vclaim-rest/Rujukan/2.0/insert", "vclaim.rujukan.insert"),
             ("aplicare", "/aplicaresws/rest/bed/update/0301R001", "aplicare.bed.update")]
HEADERS = json.dumps([["Content-Type", "application/json"], ["X-cons-id", "12345"],
                      ["X-timestamp", "1764300000"], ["user_key", "9f8e7d6c5b4a3928"]])


def _rows(n: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    statuses, weights = zip(*STATUSES, strict=True)
    rare = set(rng.sample(range(n), 5))
    for i in range(n):
        at = NOW - 30 * DAY + 30 * DAY * i / n
        upstream, path, endpoint = ENDPOINTS[i % len(ENDPOINTS)]
        card = RARE_CARD if i in rare else f"{rng.randrange(10**12):013d}"
        body = json.dumps({"kodebooking": f"KB{i:09d}", "noKartu": card,
                           "nik": f"{rng.randrange(10**15):016d}", "taskid": i % 7 + 1,
                           "waktu": int(at * 1000), "kodepoli": "INT",
                           "keterangan": "pasien kontrol ulang poli penyakit dalam"})
        status = rng.choices(statuses, weights)[0]
        yield (new_request_id(at), upstream, "POST", path, "", HEADERS, body.encode(), at,
               status, 1, at if status == "pending" else None, at, None, endpoint)


def build(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    rows = _rows(n, rng)
    while chunk := [row for _, row in zip(range(50_000), rows, strict=False)]:
        conn.executemany(
            "INSERT INTO requests (id, upstream, method, path, query, headers, body, "
            "received_at, status, attempts, next_attempt_at, updated_at, reason, endpoint) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", chunk)
        conn.commit()
    # Attempts of the last 6 hours: what the dashboard chart reads.
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM requests WHERE upstream='antrean' ORDER BY id DESC LIMIT 20000")]
    conn.executemany(
        "INSERT INTO attempts (request_id, number, upstream, started_at, duration_s, verdict,"
        " http_status) VALUES (?,?,?,?,?,?,?)",
        [(rid, 1, "antrean", NOW - rng.random() * 6 * 3600, 0.2,
          rng.choice(["success", "success", "success", "transient"]), 200) for rid in ids])
    conn.commit()
    conn.close()


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, Any]:
    result = await fn()  # warm-up
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        result = await fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), result


def plan(conn: sqlite3.Connection, f: RequestFilter, cursor: str | None) -> str:
    where, params = _indexed(f, cursor)
    rest, rest_params = _residual(f)
    rows = conn.execute(
        "EXPLAIN QUERY PLAN " + with_where(QUERIES["find_requests"], where + rest),
        (*params, *rest_params, 51)).fetchall()
    return "; ".join(r[3] for r in rows)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--db", type=Path, default=Path("/tmp/tenang-admin-bench.db"))
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    store = sqlite_backend(args.db)
    fresh = not args.db.exists()
    await store.open()  # creates the schema on a new file
    if fresh:
        t = time.perf_counter()
        build(args.db, args.rows)
        print(f"built {args.rows} rows in {time.perf_counter() - t:.0f} s", flush=True)
    total = await store.log.count_requests(RequestFilter())
    print(f"{args.db}: {total} requests, {args.db.stat().st_size / 1e6:.0f} MB")
    first = await store.log.find_requests(RequestFilter(), limit=50, cursor=None)
    deep_cursor = (await store.log.find_requests(
        RequestFilter(received_to=NOW - 25 * DAY), limit=1, cursor=None)).items[0].id
    day = RequestFilter(received_from=NOW - 10 * DAY, received_to=NOW - 9 * DAY)
    cases: list[tuple[str, RequestFilter, str | None]] = [
        ("newest page, no filter", RequestFilter(), None),
        ("page 25 days back (cursor)", RequestFilter(), deep_cursor),
        ("status=dead", RequestFilter(status=Status.DEAD), None),
        ("status=dead, deep cursor", RequestFilter(status=Status.DEAD), deep_cursor),
        ("one day, 10 days ago", day, None),
        ("upstream=vclaim", RequestFilter(upstream="vclaim"), None),
        ("endpoint=vclaim.sep", RequestFilter(endpoint="vclaim.sep"), None),
        ("text: common (kontrol)", RequestFilter(text="kontrol"), None),
        ("text: rare noKartu, first window", RequestFilter(text=RARE_CARD), None),
        ("text: rare noKartu, last 10 days", RequestFilter(
            text=RARE_CARD, received_from=NOW - 10 * DAY, received_to=NOW), None),
        ("text: rare noKartu, one day", RequestFilter(
            text=RARE_CARD, received_from=NOW - 10 * DAY, received_to=NOW - 9 * DAY), None),
        ("text: noKartu + status=dead", RequestFilter(text=RARE_CARD, status=Status.DEAD),
         None),
    ]
    conn = sqlite3.connect(args.db)
    print("\n| query | median ms | rows | capped | plan |\n|---|---:|---:|---|---|")
    for name, f, cursor in cases:
        ms, page = await timed(lambda f=f, c=cursor: store.log.find_requests(  # type: ignore[misc]
            f, limit=50, cursor=c), args.runs)
        print(f"| {name} | {ms:.1f} | {len(page.items)} | {page.capped} | "
              f"{plan(conn, f, cursor)} |", flush=True)
    window_plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM requests ORDER BY id DESC LIMIT 1 OFFSET 49999"
    ).fetchall()
    print(f"| (window boundary lookup) | - | - | - | {window_plan[0][3]} |")
    cursor, pages, t = None, 0, time.perf_counter()
    while True:  # a rare card across the whole month, window after window
        page = await store.log.find_requests(RequestFilter(text=RARE_CARD), limit=50, cursor=cursor)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    print(f"| text: rare noKartu, all {pages} windows to the oldest row | "
          f"{(time.perf_counter() - t) * 1000:.0f} (total) | - | - | - |")
    others: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("count status=dead (dry run)", lambda: store.log.count_requests(
            RequestFilter(status=Status.DEAD))),
        ("count status=failed + text (dry run)", lambda: store.log.count_requests(
            RequestFilter(status=Status.FAILED, text="kontrol"))),
        ("count text only, whole table", lambda: store.log.count_requests(
            RequestFilter(text=RARE_CARD))),
        ("sep_open_counts", store.sep_open_counts),
        ("attempt_buckets 6 h / 15 min", lambda: store.log.attempt_buckets(
            "antrean", NOW - 6 * 3600, 900)),
        ("summary (core verb, dashboard)", store.summary),
    ]
    for name, fn in others:
        ms, result = await timed(fn, args.runs)
        shown = result if isinstance(result, int) else len(result)
        print(f"| {name} | {ms:.1f} | {shown} | - | - |", flush=True)
    print(f"\nfirst page ids: {first.items[0].id} .. {first.items[-1].id}")
    conn.close()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
