"""What the hash chain costs intake on PostgreSQL: the store's group insert with the chain
(each request's leaf computed as it arrives, the batch's entries appended by
``tenang_chain_append`` in the batch's one statement) against the same group insert with
the chain off (``[audit] chain = false``: no leaf computed, no entry appended), in
alternating rounds on one database, with one instance and with two (two pools on one
schema, whose appends queue on the one ``chain_head`` row).

Each round runs ``--producers`` tasks per instance, each storing new requests one after
the other for ``--duration`` seconds (as SIMRS clients waiting for their 202), and
reports accepted requests per second and the p99 of one store call.

    .venv/bin/python bench/pg_chain_intake.py postgresql://postgres@127.0.0.1:5432/DB
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.drain_bench import booking
from proxy.config import StoreConfig
from proxy.ids import next_request_id
from proxy.store.backend import Backend
from proxy.store.postgres import group_insert
from proxy.store.postgres.backend import postgres_backend
from proxy.store.records import NewRequest


def new_request(tag: str) -> NewRequest:
    at = time.time()
    code = f"{tag}{secrets.token_hex(6)}"
    return NewRequest(id=next_request_id(at), upstream="antrean", method="POST",
                      path="/antreanrs/antrean/add", query="",
                      headers=(("Content-Type", "application/json"), ("X-cons-id", "12345")),
                      body=booking(code), received_at=at, endpoint="antrean.add",
                      ordering_key=f"antrean:kodebooking={code}")


async def producer(store: Backend, until: float, latencies: list[float]) -> int:
    stored = 0
    while time.monotonic() < until:
        began = time.perf_counter()
        await store.intake.enqueue_or_match(new_request("B"), 0.0, time.time())
        latencies.append(time.perf_counter() - began)
        stored += 1
    return stored


async def one_round(stores: list[Backend], chained: bool, args: argparse.Namespace
                    ) -> tuple[float, float]:
    for store in stores:
        db = store.engine
        pool = db.pool  # type: ignore[attr-defined]
        db._inserts = group_insert.GroupInsert(  # type: ignore[attr-defined]
            pool, parallel=args.pool_max // 2, chained=chained)
    latencies: list[float] = []
    until = time.monotonic() + args.duration
    began = time.monotonic()
    counts = await asyncio.gather(*(producer(s, until, latencies) for s in stores
                                    for _ in range(args.producers)))
    seconds = time.monotonic() - began
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 100 else 0.0
    return sum(counts) / seconds, p99 * 1000


async def run(args: argparse.Namespace) -> dict[str, object]:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in args.dsn else "?"
    config = StoreConfig(url=f"{args.dsn}{sep}search_path={schema}", pool_min=2,
                         pool_max=args.pool_max)
    results: dict[str, object] = {}
    try:
        for instances in (1, 2):
            stores = [postgres_backend(config) for _ in range(instances)]
            for s in stores:
                await s.open()
            try:
                figures: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
                await one_round(stores, True, argparse.Namespace(**{**vars(args),
                                                                    "duration": 1.0}))
                for _ in range(args.rounds):
                    for mode in ("off", "on"):
                        figures[mode].append(await one_round(stores, mode == "on", args))
                results[f"{instances} instance(s)"] = {
                    mode: {"req_s": [round(r) for r, _ in f],
                           "p99_ms": [round(p, 2) for _, p in f],
                           "median_req_s": round(statistics.median(r for r, _ in f))}
                    for mode, f in figures.items()}
            finally:
                for s in stores:
                    await s.close()
        chain_rows = await admin.fetchval(f"SELECT count(*) FROM {schema}.chain")
        results["chain_entries"] = int(chain_rows)
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dsn")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode")
    p.add_argument("--producers", type=int, default=64, help="concurrent clients per instance")
    p.add_argument("--pool-max", type=int, default=10)
    print(json.dumps(asyncio.run(run(p.parse_args())), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
