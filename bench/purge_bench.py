"""Retention benchmark: intake p99 while `tenang purge` purges N old final requests
(default 1,000,000), against the same load without a purge, in the same run.

Builds a store of N succeeded requests, each with one attempt and its BPJS answer, final
for 400 days (``bench/scale_store.py``, by SQL), with the hash chain they would have made
(4 entries each: the purge marks their tombstones), and starts Tenang on it with the BPJS
simulator down (intake alone is measured, as in ``bench/intake_bench.py``). Then rounds
alternate, each under the same open-loop load (``bench/open_loop.py``: signed Antrean
calls at ``--rate``, latency from the intended send time), measured in windows of
``--window`` seconds:

- ``without``: ``--windows`` windows, no purge;
- ``purge``: a `tenang purge --config FILE` beside the serving Tenang, windows until it
  ends. The first purge round drops the N requests' bodies (``bodies_after_days``), the
  second deletes their rows (``rows_after_days``): each is a purge of N rows.

Reports each round's windows (p99, p50, max), the purge's duration and rows per second,
checks that every 202 was a stored row, and runs `tenang audit verify` on the purged
store (its tombstones and the requests stored meanwhile).

    .venv/bin/python bench/purge_bench.py            # N = 1,000,000
    .venv/bin/python bench/purge_bench.py --smoke    # N = 20,000, under 30 s
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import server_store_toml
from bench.intake_bench import (
    ADMIN_TOKEN,
    CONS_ID,
    PATH,
    REPO,
    SECRET,
    SECRET_ENV,
    free_port,
    open_loop_request,
    stop,
    wait_http,
)
from bench.open_loop import open_loop
from bench.scale_store import build
from proxy.lifecycle import Status, Verdict
from proxy.store import chain
from proxy.store.sealing import PLAINTEXT
from proxy.store.sqlite.queries import QUERIES, REQUEST_COLUMNS
from proxy.store.sqlite.rows import row_to_attempt, row_to_request

DAY_S = 86_400.0
AGE_DAYS = 400  # the seeded requests settled this long ago
# What BPJS answered each of them (decrypted, as stored): an Antrean success.
ANSWER = json.dumps({"metadata": {"code": 200, "message": "Ok."},
                     "response": {"nomorantrean": "A-12", "angkaantrean": 12,
                                  "kodebooking": "KB00000001", "norm": "123456",
                                  "namapoli": "PENYAKIT DALAM"}}).encode()


def seed(db: Path, n: int) -> float:
    """N succeeded requests, final for AGE_DAYS, each with its attempt; seconds taken."""
    started = time.monotonic()
    build(db, n, span_s=3600.0, tag="P", status=Status.SUCCEEDED,
          ended_at=time.time() - AGE_DAYS * DAY_S)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO attempts (request_id, number, upstream, started_at, duration_s, "
            "verdict, http_status, error, response_body) "
            "SELECT id, 1, upstream, received_at, 0.2, ?, 200, NULL, ? FROM requests",
            (Verdict.SUCCESS.value, ANSWER))
        conn.execute("UPDATE requests SET attempts=1")
        conn.execute("COMMIT")
        seed_chain(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.monotonic() - started


def seed_chain(conn: sqlite3.Connection) -> None:
    """The hash chain those requests would have made (``proxy.store.chain``), so the
    purge leaves their tombstones as it would on a real store: per request, in id order,
    its entry, its claim (pending -> in_flight), its attempt and its outcome, with real
    leaves and heads (``tenang audit verify`` checks the purged store at the end).
    Each request's entry is kept in its row, as intake keeps it (schema v14: the purge
    moves it to the chain table), the others in the chain table."""
    head = chain.ChainHead(0, chain.GENESIS)
    columns = ", ".join("r." + c.strip() for c in REQUEST_COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT {columns}, a.number, a.started_at, a.duration_s, "
        "a.verdict, a.http_status, a.error, a.response_body FROM requests r "
        "JOIN attempts a ON a.request_id = r.id ORDER BY r.id")
    conn.execute("BEGIN")
    while batch := rows.fetchmany(10_000):
        links = []
        for row in batch:
            r = row_to_request(row[:-7], PLAINTEXT)
            a = row_to_attempt((r.id, *row[-7:], None), PLAINTEXT)
            links += [chain.request_link(r),
                      chain.state_link(r.id, "pending", "in_flight", None, r.received_at),
                      chain.attempt_link(r.id, a),
                      chain.state_link(r.id, "in_flight", "succeeded", "delivered",
                                       r.updated_at)]
        entries = chain.extend_rows(head, links)
        conn.executemany(
            "UPDATE requests SET chain_seq=?, chain_leaf=?, chain_head=? WHERE id=?",
            [(seq, leaf, h, ref) for seq, kind, ref, leaf, h, _ in entries
             if kind == chain.Kind.REQUEST.value])
        conn.executemany(QUERIES["append_chain"],
                         [e for e in entries if e[1] != chain.Kind.REQUEST.value])
        head = chain.ChainHead(entries[-1][0], entries[-1][4])
    conn.execute("COMMIT")


def write_configs(work: Path, port: int, admin_port: int, upstream_port: int,
                  batch_size: int = 500) -> dict[str, Path]:
    """The serving Tenang's config (no [retention]: its daily job stays out of the way)
    and one per purge round (bodies, then rows), all on the same database."""
    upstream = f"""
[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "http://127.0.0.1:{upstream_port}/antreanrs"
preset = "antrean"
cons_id = "{CONS_ID}"
secret_env = "{SECRET_ENV}"
timeout_s = 5.0
"""
    base = server_store_toml(port, admin_port)
    paths = {"serve": work / "tenang.toml", "bodies": work / "purge-bodies.toml",
             "rows": work / "purge-rows.toml"}
    paths["serve"].write_text(base + upstream)
    batch = f"batch_size = {batch_size}\n"
    paths["bodies"].write_text(base + "\n[retention]\nbodies_after_days = 30\n" + batch
                               + upstream)
    paths["rows"].write_text(base + "\n[retention]\nrows_after_days = 365\n" + batch
                             + upstream)
    return paths


def window(url: str, args: argparse.Namespace) -> dict[str, Any]:
    headers, body_for = open_loop_request()
    return open_loop(url, headers, body_for, args.rate, args.window, args.connections,
                     warmup_s=0.0)


def without_round(url: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": "without", "windows": [window(url, args) for _ in range(args.windows)]}


def purge_round(url: str, config: Path, kind: str, n: int, args: argparse.Namespace,
                env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "purge", "--config", str(config)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    windows = []
    while proc.poll() is None:  # the load goes on for as long as the purge runs
        windows.append(window(url, args))
    took = time.monotonic() - started
    out = proc.stdout.read() if proc.stdout is not None else ""
    if proc.returncode != 0:
        raise SystemExit(f"tenang purge exited {proc.returncode}:\n{out}")
    return {"kind": f"purge {kind}", "windows": windows, "purge_s": round(took, 1),
            "rows_per_s": round(n / took), "output": out.strip().splitlines()[1:]}


def summary(rounds: list[dict[str, Any]], kind: str) -> dict[str, float]:
    windows = [w for r in rounds if r["kind"].startswith(kind) for w in r["windows"]]
    p99 = [w["p99_ms"] for w in windows]
    return {"windows": len(windows), "p99_median_ms": round(statistics.median(p99), 2),
            "p99_worst_ms": max(p99), "p50_median_ms": round(statistics.median(
                [w["p50_ms"] for w in windows]), 2),
            "max_ms": max(w["max_ms"] for w in windows),
            "non_2xx": sum(w["non_2xx"] + w["socket_errors"] for w in windows),
            "ok": sum(w["ok"] for w in windows)}


def run(args: argparse.Namespace) -> int:
    py = sys.executable
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tenang-purge-bench-") as tmp:
        work = Path(tmp)
        port, admin_port, up_port = (free_port() for _ in range(3))
        configs = write_configs(work, port, admin_port, up_port, args.batch_size)
        seeded_s = seed(work / "tenang.db", args.n)
        size_mb = (work / "tenang.db").stat().st_size / 1e6
        print(f"seeded {args.n} final requests with attempts in {seeded_s:.1f} s "
              f"({size_mb:.0f} MB)", flush=True)
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, SECRET_ENV: SECRET}
        log = (work / "tenang.log").open("wb")
        upstream = subprocess.Popen(
            [py, "-m", "proxy", "simulate-bpjs", "--listen", f"127.0.0.1:{up_port}",
             "--cons-id", CONS_ID, "--secret", SECRET, "--mode", "down"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        tenang = subprocess.Popen([py, "-m", "proxy", "serve", "--config",
                                   str(configs["serve"])],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}{PATH}"
        rounds: list[dict[str, Any]] = []
        started_at = time.time()
        try:
            wait_http(f"http://127.0.0.1:{admin_port}/healthz", tenang)
            window(url, argparse.Namespace(**{**vars(args), "window": 1.0}))  # warm up
            for kind in ("bodies", "rows"):
                rounds.append(without_round(url, args))
                print(json.dumps(summary(rounds[-1:], "without")), flush=True)
                rounds.append(purge_round(url, configs[kind], kind, args.n, args, env))
                print(json.dumps({**summary(rounds[-1:], "purge"),
                                  "purge_s": rounds[-1]["purge_s"]}), flush=True)
            rounds.append(without_round(url, args))
            with sqlite3.connect(work / "tenang.db") as db:
                stored = db.execute("SELECT COUNT(*) FROM requests WHERE received_at >= ?",
                                    (started_at - 5,)).fetchone()[0]
                old_left = db.execute("SELECT COUNT(*) FROM requests WHERE received_at < ?",
                                      (started_at - DAY_S,)).fetchone()[0]
        finally:
            stop(tenang)
            stop(upstream)
            log.close()
        # The purged store's chain, tombstones and the requests stored meanwhile, checked.
        verified = subprocess.run([py, "-m", "proxy", "audit", "verify", "--config",
                                   str(configs["serve"])], cwd=REPO, env=env,
                                  capture_output=True, text=True, check=False)

    without, during = summary(rounds, "without"), summary(rounds, "purge")
    accepted = without["ok"] + during["ok"]
    purges = [r for r in rounds if r["kind"].startswith("purge")]
    result = {
        "n": args.n, "rate": args.rate, "window_s": args.window,
        "batch_size": args.batch_size,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "without": without, "during_purge": during,
        "p99_ratio": round(during["p99_median_ms"] / without["p99_median_ms"], 2),
        "purges": [{k: r[k] for k in ("kind", "purge_s", "rows_per_s", "output")}
                   for r in purges],
        "accepted": accepted, "stored": stored, "old_rows_left": old_left,
        "every_202_stored": stored >= accepted,
        "verify_exit": verified.returncode,
        "verify": (verified.stdout + verified.stderr).strip().splitlines()[-1:],
    }
    print(json.dumps(result, indent=2))
    ok = result["every_202_stored"] and old_left == 0 and verified.returncode == 0
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="final requests seeded")
    p.add_argument("--rate", type=float, default=1000.0, help="intake requests per second")
    p.add_argument("--window", type=float, default=5.0, help="seconds per measured window")
    p.add_argument("--windows", type=int, default=4, help="windows per round without purge")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=500,
                   help="[retention] batch_size of the purges")
    p.add_argument("--smoke", action="store_true",
                   help="N = 20,000, 1 s windows: the machinery, in under 30 s")
    args = p.parse_args()
    if args.smoke:
        args.n, args.window, args.windows = 20_000, 1.0, 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
