"""SEP inserts through a flaky BPJS: how many end `held` for a person, and is any SEP
made twice?

N SEP inserts (one card each, signed like a SIMRS) go through Tenang (in-process, a real
SQLite file) to the BPJS simulator in ``flaky`` mode: ``--error-rate`` of all requests,
sends and history reads alike, fail before being applied (HTML 500/503 or a reset), and
``--made-then-reset`` of the inserts are made by BPJS and then lose their answer (a
one-shot reset-after-apply). Each unanswered insert is settled by reading the card's
service history. The accounting comes from the simulator's own state: SEPs made per
card (0 lost = every succeeded insert has its SEP, 0 twice = no card with two).

    .venv/bin/python bench/sep_reconcile_soak.py [--inserts 200] [--error-rate 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.app import Tenang
from proxy.bpjs.simulator import SimConfig
from proxy.bpjs.simulator.harness import start_simulator
from proxy.config import parse_config

CONS_ID, SECRET, SECRET_ENV = "12345", "bench-sep-secret", "TENANG_BENCH_SECRET"
INSERT = "/vclaim-rest/SEP/2.0/insert"
WIB = timezone(timedelta(hours=7))


def t_sep(card: str) -> dict[str, Any]:
    today = datetime.now(WIB).date().isoformat()
    return {"request": {"t_sep": {
        "noKartu": card, "tglSep": today, "ppkPelayanan": "0301R001", "jnsPelayanan": "2",
        "klsRawat": {"klsRawatHak": "2"}, "noMR": "123456",
        "rujukan": {"asalRujukan": "1", "tglRujukan": today,
                    "noRujukan": f"0138U02003{card[-6:]}", "ppkRujukan": "0138U020"},
        "catatan": "", "diagAwal": "I10", "poli": {"tujuan": "INT", "eksekutif": "0"},
        "user": "soak"}}}


def config(work: Path, sim_url: str) -> Any:
    up = {"name": "vclaim", "prefix": "/vclaim-rest", "target": sim_url + "/vclaim-rest",
          "preset": "vclaim", "cons_id": CONS_ID, "secret_env": SECRET_ENV, "timeout_s": 2.0,
          "retry": {"max_attempts": 12, "initial_delay_s": 0.05, "max_delay_s": 0.5},
          "breaker": {"fail_max": 1_000_000, "reset_timeout_s": 0.2},
          "rate": {"per_second": 10_000.0, "max_concurrency": 32}}
    raw = {"server": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"},
           "store": {"url": "sqlite:///./tenang.db"},
           "relay": {"poll_interval_s": 0.05, "lease_margin_s": 1.0}, "upstreams": [up]}
    return parse_config(raw, work, {"TENANG_ADMIN_TOKEN": "bench", SECRET_ENV: SECRET})


async def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sim = await start_simulator(SimConfig(cons_id=CONS_ID, secret=SECRET, mode="flaky",
                                          error_rate=args.error_rate, seed=args.seed))
    tenang = Tenang(config(work, sim.url))
    await tenang.start()
    try:
        made_then_reset = round(args.inserts * args.made_then_reset)
        if made_then_reset:
            await sim.fault("SEP/2.0/insert", "reset-after-apply", times=made_then_reset)
        cards = [f"0009{n:09d}" for n in range(args.inserts)]
        ids = await asyncio.gather(*(send(tenang, sim, c) for c in cards))
        statuses = await settle(tenang, [i for i in ids if i], args.timeout_s)
        seps = Counter(s["no_kartu"] for s in (await sim.snapshot())["seps"])
        reads = len(await sim.log("HistoriPelayanan"))
    finally:
        await tenang.stop()
        await sim.close()
    return {"inserts": args.inserts, "accepted": sum(1 for i in ids if i),
            "statuses": dict(statuses), "cards_with_a_sep": len(seps),
            "cards_with_two": sum(1 for n in seps.values() if n > 1), "history_reads": reads}


async def send(tenang: Tenang, sim: Any, card: str) -> str | None:
    headers = sim.signed_headers("vclaim", method="POST")
    async with aiohttp.ClientSession() as http, http.post(
            tenang.gateway_url + INSERT, data=json.dumps(t_sep(card)).encode(),
            headers=headers) as resp:
        await resp.read()
        return resp.headers.get("X-Tenang-Request-Id") if resp.status in (200, 202) else None


async def settle(tenang: Tenang, ids: list[str], timeout_s: float) -> Counter[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [await tenang.backend.log.get(i) for i in ids]
        statuses = Counter(r.status.value for r in rows if r is not None)
        if not statuses.keys() & {"pending", "in_flight"} or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.2)  # polling the store while the relay works


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=200)
    parser.add_argument("--error-rate", type=float, default=0.3)
    parser.add_argument("--made-then-reset", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout-s", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(soak(args, Path(tmp)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
