"""Intake on PostgreSQL against SQLite (issue 13): accepted writes/s of one Tenang on a
SQLite file, one Tenang on PostgreSQL, and three Tenang on one PostgreSQL database, in
alternating rounds of one run.

All five `tenang serve` processes run side by side from the start (BPJS down for the
whole run, so every request is stored and none is delivered) and the three targets are
measured in turn, round after round, so drift in this shared machine's speed hits each
alike; medians are compared. Load is intake_bench's wrk script (signed Antrean calls, a
booking each); the three instances get one wrk each, all three at once, the
connections split evenly between them (the total is the same as for one instance).
Accepted writes/s is the 2xx answers per second, summed over the instances. At the end
every 2xx answer must be a stored row (each store's ``requests`` counted).

Targets: one PostgreSQL instance >= 0.5x SQLite; three instances >= 1.5x one. `--no-chain`
runs every target with `[audit] chain = false` (what the hash chain costs).

    .venv/bin/python bench/pg_intake_bench.py [--dsn postgresql://...] [--rounds 3]

The DSN (default: $TENANG_TEST_PG_DSN) names a database the bench may create schemas in;
it makes one for each PostgreSQL target and drops them at the end. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SQLITE_URL
from bench.intake_bench import (
    ADMIN_TOKEN,
    CONS_ID,
    PATH,
    SECRET,
    SECRET_ENV,
    cpu_ticks,
    free_port,
    stop,
    tenang_config,
    wait_http,
    write_script,
    wrk_command,
    wrk_stats,
)
from bench.pg_store import default_dsn, is_postgres, pg_row, pg_schema, pg_value
from bench.scale_probe import proc_cpu_s

REPO = Path(__file__).resolve().parents[1]
TARGET_PG1_VS_SQLITE = 0.5
TARGET_PG3_VS_PG1 = 1.5


@dataclass
class Target:
    """One store and the Tenang instances that serve it."""
    name: str
    store_url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    work: list[Path] = field(default_factory=list)
    accepted: int = 0  # 2xx answers, warm-up included

    def start(self, root: Path, count: int, upstream_port: int, pool_max: int,
              chain: bool) -> None:
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, SECRET_ENV: SECRET}
        for i in range(count):
            work = root / f"{self.name}-{i}"
            work.mkdir()
            port, admin_port = free_port(), free_port()
            pool = f"pool_max = {pool_max}\n" if is_postgres(self.store_url) else ""
            config = tenang_config(work, port, admin_port, upstream_port, chain=chain,
                                   store_url=self.store_url, store_settings=pool)
            with (work / "tenang.log").open("ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
            self.gateways.append(f"http://127.0.0.1:{port}{PATH}")
            self.work.append(work)
            wait_http(f"http://127.0.0.1:{admin_port}/healthz", self.procs[-1], 60)

    def rows(self) -> int:
        if is_postgres(self.store_url):
            return int(pg_value(self.store_url, "SELECT count(*) FROM requests"))
        with sqlite3.connect(self.work[0] / "tenang.db") as db:
            return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def rows_per_commit(self, since: float, until: float) -> float | None:
        """Mean rows per intake commit over requests received in [since, until): on
        PostgreSQL a row's xmin names the transaction that inserted it."""
        if not is_postgres(self.store_url):
            return None
        rows, commits = pg_row(self.store_url, "SELECT count(*), count(DISTINCT xmin::text) "
                               "FROM requests WHERE received_at >= $1 AND received_at < $2",
                               since, until)
        return round(rows / commits, 1) if commits else None

    def log_tail(self) -> str:
        return "\n".join(f"--- {w.name}\n" + (w / "tenang.log").read_text(
            errors="replace")[-1500:] for w in self.work)

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)


def pg_backend_cpu_s(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving ``database`` (their process titles
    name it), from /proc; the server's shared processes (WAL writer, checkpointer) are
    not counted. 0 where the server runs elsewhere."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                total += proc_cpu_s(int(pid))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return total


def load_round(target: Target, script: Path, seconds: float, args: argparse.Namespace
               ) -> dict[str, Any]:
    """wrk against every instance of ``target`` at once, ``args.connections`` split
    evenly; the summed figures, with the CPU each side used."""
    n = len(target.gateways)
    shares = [args.connections // n + (1 if i < args.connections % n else 0)
              for i in range(n)]
    write_script(script)  # signed now
    database = urlsplit(target.store_url).path.lstrip("/")
    ticks, tenang_s = cpu_ticks(), sum(proc_cpu_s(p.pid) for p in target.procs)
    pg_s = pg_backend_cpu_s(database) if is_postgres(target.store_url) else 0.0
    started = time.time()
    runs = [subprocess.Popen(wrk_command(url, script, seconds, 1, c), stdout=subprocess.PIPE,
                             text=True) for url, c in zip(target.gateways, shares, strict=True)]
    outs = [run.communicate()[0] for run in runs]
    ended = time.time()
    if any(run.returncode for run in runs):
        raise SystemExit(f"wrk failed against {target.name}:\n{outs}")
    delta = [b - a for a, b in zip(ticks, cpu_ticks(), strict=True)]
    tenang_s = sum(proc_cpu_s(p.pid) for p in target.procs) - tenang_s
    pg_s = (pg_backend_cpu_s(database) - pg_s) if is_postgres(target.store_url) else 0.0
    stats = [wrk_stats(out) for out in outs]
    ok = sum(s["ok"] for s in stats)
    seconds_measured = max(s["duration_us"] for s in stats) / 1e6
    return {
        "rps": ok / seconds_measured, "ok": ok,
        "errors": sum(s["status_errors"] + s["socket_errors"] for s in stats),
        "p99_ms": max(s["p99_ms"] for s in stats),
        "per_instance_rps": [round(s["ok"] / (s["duration_us"] / 1e6)) for s in stats],
        "rows_per_commit": target.rows_per_commit(started, ended),
        "tenang_cpu_us": 1e6 * tenang_s / max(ok, 1),
        "pg_cpu_us": 1e6 * pg_s / max(ok, 1),
        "busy_pct": round(100 * (1 - (delta[3] + delta[4]) / sum(delta)), 1) if delta else None,
        "steal_pct": round(100 * delta[7] / sum(delta), 1) if len(delta) > 7 else None,
    }


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found on PATH (apt-get install wrk)")
    if not args.dsn:
        raise SystemExit("no PostgreSQL: pass --dsn or set TENANG_TEST_PG_DSN")
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "pg1": [], "pg3": []}
    rows: dict[str, int] = {}
    accepted: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="tenang-pgbench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        script = work / "post.lua"
        up_port = free_port()
        upstream = subprocess.Popen(
            [sys.executable, "-m", "proxy", "simulate-bpjs", "--listen",
             f"127.0.0.1:{up_port}", "--cons-id", CONS_ID, "--secret", SECRET,
             "--mode", "down"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        stack.callback(stop, upstream)
        targets = [Target("sqlite", SQLITE_URL),
                   Target("pg1", stack.enter_context(pg_schema(args.dsn, "pg1"))),
                   Target("pg3", stack.enter_context(pg_schema(args.dsn, "pg3")))]
        try:
            for target, count in zip(targets, (1, 1, 3), strict=True):
                stack.callback(target.stop)
                target.start(work, count, up_port, args.pool_max, not args.no_chain)
            for target in targets:
                if args.warmup > 0:
                    target.accepted += load_round(target, script, args.warmup, args)["ok"]
            for r in range(args.rounds):
                # Alternating order too: no target is always measured after the same one.
                for target in (targets if r % 2 == 0 else targets[::-1]):
                    stats = load_round(target, script, args.duration, args)
                    target.accepted += stats["ok"]
                    runs[target.name].append(stats)
                    print(f"  round {r + 1} {target.name}: {stats['rps']:.0f} writes/s "
                          f"{stats['per_instance_rps']}, p99 {stats['p99_ms']:.1f} ms, "
                          f"{stats['errors']} errors, tenang {stats['tenang_cpu_us']:.0f} "
                          f"us/req, pg {stats['pg_cpu_us']:.0f} us/req, "
                          f"{stats['rows_per_commit']} rows/commit, machine busy "
                          f"{stats['busy_pct']} %", flush=True)
            for target in targets:
                rows[target.name], accepted[target.name] = target.rows(), target.accepted
        except BaseException:
            for target in targets:
                print(target.log_tail(), file=sys.stderr)
            raise
    return report(runs, rows, accepted, args, load_before)


def report(runs: dict[str, list[dict[str, Any]]], rows: dict[str, int],
           accepted: dict[str, int], args: argparse.Namespace,
           load_before: tuple[float, float, float]) -> int:
    med = {name: {k: statistics.median(r[k] for r in rs)
                  for k in ("rps", "p99_ms", "tenang_cpu_us", "pg_cpu_us")}
           for name, rs in runs.items()}
    pg1_vs_sqlite = med["pg1"]["rps"] / med["sqlite"]["rps"]
    pg3_vs_pg1 = med["pg3"]["rps"] / med["pg1"]["rps"]
    met1, met3 = pg1_vs_sqlite >= TARGET_PG1_VS_SQLITE, pg3_vs_pg1 >= TARGET_PG3_VS_PG1
    durable = {name: rows[name] >= accepted[name] for name in rows}
    print(f"wrk, {args.connections} connections in all, pool_max {args.pool_max}, hash chain "
          f"{'off' if args.no_chain else 'on'}, "
          f"{args.rounds} alternating rounds of "
          f"{args.duration:g} s, POST {PATH} (signed); medians; load average before "
          f"{' '.join(f'{x:.2f}' for x in load_before)}, {os.cpu_count()} CPUs")
    print(f"{'target':<28}{'writes/s':>10}{'p99 ms':>9}{'errors':>8}"
          f"{'tenang us/req':>15}{'pg us/req':>11}")
    labels = {"sqlite": "SQLite, one instance", "pg1": "PostgreSQL, one instance",
              "pg3": "PostgreSQL, three instances"}
    for name, label in labels.items():
        m = med[name]
        print(f"{label:<28}{m['rps']:>10.0f}{m['p99_ms']:>9.1f}"
              f"{sum(r['errors'] for r in runs[name]):>8}{m['tenang_cpu_us']:>15.0f}"
              f"{m['pg_cpu_us']:>11.0f}")
    print(f"one PostgreSQL / SQLite: {pg1_vs_sqlite:.2f} (target >= {TARGET_PG1_VS_SQLITE}): "
          f"{'MET' if met1 else 'MISSED'}")
    print(f"three / one PostgreSQL: {pg3_vs_pg1:.2f} (target >= {TARGET_PG3_VS_PG1}): "
          f"{'MET' if met3 else 'MISSED'}")
    for name in rows:
        print(f"durability {name}: {rows[name]} rows, {accepted[name]} 2xx answers "
              f"(incl. warm-up): {'OK' if durable[name] else 'FAIL'}")
    print(json.dumps({
        "connections": args.connections, "pool_max": args.pool_max,
        "chain": not args.no_chain, "rounds": args.rounds,
        "duration_s": args.duration,
        "medians": med, "runs": runs, "pg1_vs_sqlite": round(pg1_vs_sqlite, 3),
        "pg3_vs_pg1": round(pg3_vs_pg1, 3), "targets_met": {"pg1": met1, "pg3": met3},
        "rows": rows, "accepted_2xx": accepted, "durable": durable,
        "loadavg_before": load_before, "nproc": os.cpu_count(),
        "python": platform.python_version()}))
    return 0 if all(durable.values()) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", default=default_dsn(),
                   help="PostgreSQL database for the bench's schemas (default: "
                        "$TENANG_TEST_PG_DSN)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per target and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per target")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    p.add_argument("--connections", type=int, default=64, help="in all, split over instances")
    p.add_argument("--pool-max", type=int, default=10,
                   help="[store] pool_max of each PostgreSQL instance (intake batches use "
                        "half)")
    p.add_argument("--no-chain", action="store_true",
                   help="[audit] chain = false on every target (what the hash chain costs)")
    args = p.parse_args()
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
