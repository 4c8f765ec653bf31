"""What the request log's key columns (booking code, task id, masked card, SEP number)
add to a page, on the 1,000,000-row file of admin_search_bench.py.

Each round times the same page twice, alternating which goes first: the store's keyset
page alone, and the page plus ``admin_ui.row_keys.page_keys`` (every body on the page
parsed, one attempts read per succeeded SEP insert). Figures: RESULTS.md, "Request-log
key columns".

    .venv/bin/python bench/admin_log_keys_bench.py [--db PATH] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from admin_search_bench import DAY, NOW, build  # type: ignore[import-not-found]

from admin_ui.row_keys import page_keys
from proxy.store.backend import Backend
from proxy.store.records import RequestFilter
from proxy.store.sqlite import sqlite_backend


async def _page(store: Backend, f: RequestFilter, limit: int, cursor: str | None,
                keys: bool) -> float:
    t = time.perf_counter()
    page = await store.log.find_requests(f, limit=limit, cursor=cursor)
    if keys:
        await page_keys(store, page.items)
    return (time.perf_counter() - t) * 1000


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--db", type=Path, default=Path("/tmp/tenang-admin-bench.db"))
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    store = sqlite_backend(args.db)
    fresh = not args.db.exists()
    await store.open()
    if fresh:
        build(args.db, args.rows)
    total = await store.log.count_requests(RequestFilter())
    print(f"{args.db}: {total} requests")
    deep = (await store.log.find_requests(RequestFilter(received_to=NOW - 25 * DAY), limit=1,
                                          cursor=None)).items[0].id
    cases = [("newest page", RequestFilter(), None),
             ("page 25 days back", RequestFilter(), deep),
             ("endpoint=vclaim.sep (SEP inserts: most need an attempts read)",
              RequestFilter(endpoint="vclaim.sep"), None)]
    print("| page | rows | page alone ms | page + keys ms | ratio |\n|---|---:|---:|---:|---:|")
    for name, f, cursor in cases:
        for limit in (50, 100):
            plain: list[float] = []
            keyed: list[float] = []
            await _page(store, f, limit, cursor, True)  # warm-up
            for r in range(args.rounds):
                for keys in ((False, True) if r % 2 == 0 else (True, False)):
                    (keyed if keys else plain).append(
                        await _page(store, f, limit, cursor, keys))
            a, b = statistics.median(plain), statistics.median(keyed)
            print(f"| {name} | {limit} | {a:.1f} | {b:.1f} | {b / a:.2f} |", flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
