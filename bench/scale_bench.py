"""Scale benchmark: Tenang with N requests queued (default 1,000,000) against Tenang with 1,000.

Builds both stores by SQL (``bench/scale_store.py``), starts a Tenang on each, side by side,
each with its own BPJS simulator (down), and measures on both in the same run:

- startup to ready (``/readyz`` 200) and RSS (VmRSS, and the peak VmHWM at the end);
- idle CPU with BPJS down (CPU seconds of the Tenang process over a window, /proc);
- latency of ``/api/v1/summary``, ``/metrics`` (uncached: scrapes > 1 s apart), ``/readyz``;
- intake: req/s and p99 at 64 connections, signed ``antrean/add`` calls (wrk, or a
  Python client without wrk), alternating rounds between the two; ``max_pending`` is 2 N, at least
  N + 500,000 (never reached);
- delivery: simulator up, pacing off, requests succeeded per second over a window,
  alternating rounds;
- the cap: the big Tenang restarted with ``max_pending`` a little above its queue, then
  intake past the cap must be answered 503, promptly.

    .venv/bin/python bench/scale_bench.py            # N = 1,000,000, ~4 min
    .venv/bin/python bench/scale_bench.py --smoke    # N = 20,000, short rounds (CI)
    .venv/bin/python bench/scale_bench.py --store postgresql://USER@HOST/DB

With ``--store`` a PostgreSQL DSN, both Tenang serve PostgreSQL instead: each store, once
built, is copied by ``tenang migrate-store`` into a schema of its own in that database
(dropped at the end), and the same figures are taken against the same targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.pg_store import is_postgres, pg_schema, pg_value
from bench.scale_probe import REPO, Instance, http_get, intake, latencies, proc_cpu_s, rss_mb
from bench.scale_store import build
from proxy import lifecycle

TARGETS = {"intake_ratio": 0.8, "delivery_ratio": 0.8, "idle_cpu_pct": 2.0,
           "summary_ms": 50.0, "metrics_ms": 50.0, "startup_s": 3.0, "rss_mb": 200.0}
SMALL = 1_000


# What intake can add to a queue in one run's rounds, with room to spare: a quiet machine
# took 11,500 req/s for a smoke round, which put N = 20,000 past a cap of 2 N (3,062 503s
# counted as intake errors).
INTAKE_HEADROOM = 500_000


def unbinding_cap(n: int) -> int:
    """``max_pending`` for the measured rounds: never reached, so intake measures intake."""
    return max(2 * n, n + INTAKE_HEADROOM)


def started(inst: Instance, cap: int) -> float:
    """Start ``inst``'s Tenang; seconds from launch until /readyz answers 200."""
    t0 = time.monotonic()
    inst.start_tenang(cap)
    deadline = t0 + 120
    while time.monotonic() < deadline:
        if inst.tenang is not None and inst.tenang.poll() is not None:
            raise SystemExit(f"{inst.name}: tenang exited:\n{inst.log_tail()}")
        status, _ = http_get(f"{inst.admin}/readyz", timeout=1)
        if status == 200:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise SystemExit(f"{inst.name}: not ready within 120 s:\n{inst.log_tail()}")


def idle_cpu_pct(insts: list[Instance], settle_s: float, window_s: float) -> dict[str, float]:
    """Both idle at once (BPJS down, no load): CPU of each Tenang process over the window."""
    time.sleep(settle_s)  # the first claims fail and open the breaker
    before = {i.name: proc_cpu_s(i.pid) for i in insts}
    time.sleep(window_s)
    return {i.name: round(100 * (proc_cpu_s(i.pid) - before[i.name]) / window_s, 2)
            for i in insts}


def succeeded(inst: Instance) -> int:
    _, body = http_get(f"{inst.admin}/api/v1/summary", token=inst.token)
    return int(json.loads(body)["upstreams"]["antrean"]["counts"]["succeeded"])


def delivery_rate(inst: Instance, ramp_s: float, window_s: float) -> float:
    """Simulator up (pacing is off in the config): deliveries per second over the window
    after ``ramp_s`` (the breaker's reset wait and its probe), then down again."""
    inst.sim_mode("up")
    try:
        time.sleep(ramp_s)
        before, t0 = succeeded(inst), time.monotonic()
        time.sleep(window_s)
        after, t1 = succeeded(inst), time.monotonic()
    finally:
        inst.sim_mode("down")
    return (after - before) / (t1 - t0)


def alternate(insts: list[Instance], rounds: int, measure: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {i.name: [] for i in insts}
    for r in range(rounds):
        for inst in (insts if r % 2 == 0 else list(reversed(insts))):
            out[inst.name].append(measure(inst))
            print(f"  round {r + 1} {inst.name}: {out[inst.name][-1]}", flush=True)
    return out


def queued(inst: Instance) -> int:
    # Both stores keep request_counts (SQLite's writer, PostgreSQL's triggers).
    sql = ("SELECT COALESCE(SUM(n), 0) FROM request_counts WHERE status IN "
           f"{lifecycle.sql_in(lifecycle.QUEUED)}")
    if is_postgres(inst.store_url):
        return int(pg_value(inst.store_url, sql))
    with sqlite3.connect(inst.db) as db:
        return int(db.execute(sql).fetchone()[0])


def copy_to_postgres(inst: Instance, url: str) -> float:
    """``inst``'s built SQLite store copied into ``url`` (`tenang migrate-store`, as an
    operator moves a store); seconds taken. ``inst`` serves ``url`` from then on."""
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "proxy", "migrate-store", "--from",
                           f"sqlite:///{inst.db}", "--to", url], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"migrate-store into {url} failed:\n{done.stdout}{done.stderr}")
    inst.store_url = url
    return time.monotonic() - t0


def cap_check(inst: Instance, args: argparse.Namespace) -> dict[str, Any]:
    """Restart with max_pending just above the queue; intake past it must get 503s."""
    inst.stop_tenang()
    room = 1000  # a second or less of intake
    cap = queued(inst) + room
    ready_s = started(inst, cap)
    stats = intake(inst, args.duration, args.connections, "cap")
    refused = stats["status_errors"]
    return {"cap": cap, "room": room, "restart_ready_s": round(ready_s, 2),
            "answered_rps": round(stats["rps"], 1), "p99_ms": round(stats["p99_ms"], 2),
            "accepted": stats["ok"], "refused_503": refused, "timeouts": stats["timeouts"],
            "prompt": refused > 0 and stats["timeouts"] == 0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    pg = is_postgres(args.store)
    result: dict[str, Any] = {"n": args.n, "small": SMALL, "nproc": os.cpu_count(),
                              "python": platform.python_version(),
                              "store": "postgresql" if pg else "sqlite",
                              "sqlite": sqlite3.sqlite_version,
                              "loadavg_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="tenang-scale-", dir=args.tmp) as tmp, \
            ExitStack() as schemas:
        work = Path(tmp)
        insts = [Instance("1k", SMALL, work / "small"), Instance("N", args.n, work / "big")]
        for inst in insts:
            took = build(inst.db, inst.n, tag=inst.name)
            print(f"built {inst.n} pending in {took:.1f} s", flush=True)
            result[f"build_s_{inst.name}"] = round(took, 1)
            if pg:
                url = schemas.enter_context(pg_schema(args.store, f"scale{inst.name}"))
                took = copy_to_postgres(inst, url)
                print(f"copied into PostgreSQL in {took:.1f} s", flush=True)
                result[f"copy_s_{inst.name}"] = round(took, 1)
        try:
            for inst in insts:
                inst.start_sim()
            result["startup_s"] = {i.name: round(started(i, unbinding_cap(args.n)), 2)
                                  for i in insts}
            result["rss_mb_ready"] = {i.name: rss_mb(i.pid)[0] for i in insts}
            result["idle_cpu_pct"] = idle_cpu_pct(insts, args.settle, args.idle)
            result["latency_ms"] = {i.name: latencies(i, args.samples) for i in insts}
            print("intake (req/s, p99 ms):", flush=True)
            runs = alternate(insts, args.rounds, lambda i: _brief(
                intake(i, args.duration, args.connections, "main")))
            result["intake"] = runs
            # The small store now also holds what intake accepted (still a few % of N).
            result["queued_before_delivery"] = {i.name: queued(i) for i in insts}
            print(f"delivery (succeeded/s), queued: {result['queued_before_delivery']}",
                  flush=True)
            result["delivery"] = alternate(insts, args.rounds, lambda i: round(
                delivery_rate(i, args.ramp, args.window), 1))
            result["rss_mb_end"] = {i.name: rss_mb(i.pid) for i in insts}
            result["cap"] = cap_check(insts[1], args)
        finally:
            for inst in insts:
                inst.stop()
    return result


def _brief(stats: dict[str, Any]) -> dict[str, Any]:
    return {"rps": round(stats["rps"], 1), "p99_ms": round(stats["p99_ms"], 2),
            "errors": stats["status_errors"] + stats["socket_errors"]}


def verdicts(r: dict[str, Any]) -> dict[str, tuple[float, float, bool]]:
    """(figure at N, figure at 1k, target met) for each target."""
    med = statistics.median
    intake_n = med(x["rps"] for x in r["intake"]["N"])
    intake_1k = med(x["rps"] for x in r["intake"]["1k"])
    deliv_n, deliv_1k = med(r["delivery"]["N"]), med(r["delivery"]["1k"])
    lat = r["latency_ms"]
    t = TARGETS
    return {
        "intake req/s": (intake_n, intake_1k,
                         intake_1k > 0 and intake_n >= t["intake_ratio"] * intake_1k),
        "delivery /s": (deliv_n, deliv_1k,
                        deliv_1k > 0 and deliv_n >= t["delivery_ratio"] * deliv_1k),
        "idle CPU %": (r["idle_cpu_pct"]["N"], r["idle_cpu_pct"]["1k"],
                       r["idle_cpu_pct"]["N"] <= t["idle_cpu_pct"]),
        "summary ms (max)": (lat["N"]["summary"]["max"], lat["1k"]["summary"]["max"],
                             lat["N"]["summary"]["max"] <= t["summary_ms"]),
        "metrics ms (max)": (lat["N"]["metrics"]["max"], lat["1k"]["metrics"]["max"],
                             lat["N"]["metrics"]["max"] <= t["metrics_ms"]),
        "readyz ms (max)": (lat["N"]["readyz"]["max"], lat["1k"]["readyz"]["max"], True),
        "startup to ready s": (r["startup_s"]["N"], r["startup_s"]["1k"],
                               r["startup_s"]["N"] <= t["startup_s"]),
        "RSS MB (peak)": (r["rss_mb_end"]["N"][1], r["rss_mb_end"]["1k"][1],
                          r["rss_mb_end"]["N"][1] <= t["rss_mb"]),
    }


def report(r: dict[str, Any]) -> bool:
    rows = verdicts(r)
    print(f"\n{r['store'] + ':':<22}{'N=' + str(r['n']):>14}{'1k':>12}  target")
    for name, (big, small, ok) in rows.items():
        print(f"{name:<22}{big:>14.2f}{small:>12.2f}  {'met' if ok else 'MISSED'}")
    cap = r["cap"]
    print(f"max_pending {cap['cap']} ({cap['room']} above the queue): {cap['accepted']} "
          f"accepted, {cap['refused_503']} refused 503, p99 {cap['p99_ms']} ms, "
          f"{cap['timeouts']} timeouts: {'prompt' if cap['prompt'] else 'NOT PROMPT'}")
    print(json.dumps(r))
    return all(ok for _, _, ok in rows.values()) and cap["prompt"]


def sound(r: dict[str, Any]) -> bool:
    """Whether the run measured what it claims (the smoke run's pass condition): every
    intake answer a 202, some deliveries on both, and 503s past the cap."""
    errors = sum(x["errors"] for runs in r["intake"].values() for x in runs)
    delivered = all(max(v) > 0 for v in r["delivery"].values())
    if errors or not delivered:
        print(f"BROKEN RUN: {errors} intake errors, deliveries {r['delivery']}")
    return errors == 0 and delivered and r["cap"]["prompt"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="requests queued in the big store")
    p.add_argument("--smoke", action="store_true",
                   help="N = 20,000 and short rounds (CI); fails only on a broken run")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per store")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per intake round")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--window", type=float, default=5.0, help="seconds per delivery round")
    p.add_argument("--ramp", type=float, default=2.0,
                   help="seconds after BPJS comes up before delivery is counted")
    p.add_argument("--settle", type=float, default=3.0, help="seconds before idle CPU")
    p.add_argument("--idle", type=float, default=10.0, help="idle CPU window, seconds")
    p.add_argument("--samples", type=int, default=5, help="latency samples per endpoint")
    p.add_argument("--tmp", default=None, help="directory for the stores (default: $TMPDIR)")
    p.add_argument("--store", default="sqlite",
                   help="sqlite (default), or a PostgreSQL DSN: both stores are served "
                        "from schemas of the bench's own in that database")
    args = p.parse_args()
    if args.smoke:
        args.n, args.rounds, args.duration, args.window = 20_000, 1, 2.0, 2.0
        args.ramp, args.settle, args.idle, args.samples = 1.5, 1.0, 2.0, 2
    result = run(args)
    ok, measured = report(result), sound(result)
    return 0 if measured and (ok or args.smoke) else 1


if __name__ == "__main__":
    raise SystemExit(main())
