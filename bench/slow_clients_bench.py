"""Slow-client benchmark: do normal writes keep their latency while hundreds of slow
sockets are open, and are the slow ones cut off at their timeouts? (issue 10.4)

One `tenang serve` (store on SQLite, BPJS target down: every write is stored and
queued), measured in alternating rounds:

- **quiet**: ``--clients`` concurrent signed Antrean writes for ``--duration`` s;
- **attack**: the same, while ``--slow`` sockets are open: half send a request head that
  never ends, half a head and then a body one byte every 0.5 s that never ends.

Per round: write latency p50/p99/max; in attack rounds also how many slow sockets the
server closed and after how long (``server.header_timeout_s`` and ``body_timeout_s``
are ``--timeout``). Medians over rounds are compared.

    .venv/bin/python bench/slow_clients_bench.py [--slow 500] [--clients 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.intake_bench import free_port, stop, wait_http
from proxy.bpjs.simulator.client import signed_headers

CONS_ID = "12345"
SECRET = "bench-slow-secret"
SECRET_ENV = "TENANG_BENCH_SECRET"
ADD_PATH = "/antreanrs/antrean/add"


def tenang_config(work: Path, port: int, admin_port: int, timeout_s: float) -> Path:
    path = work / "tenang.toml"
    path.write_text(f"""\
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
header_timeout_s = {timeout_s}
body_timeout_s = {timeout_s}

[store]
url = "sqlite:///./tenang.db"

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "http://127.0.0.1:9/antreanrs"
preset = "antrean"
cons_id = "{CONS_ID}"
secret_env = "{SECRET_ENV}"
timeout_s = 1.0
""")
    return path


def headers() -> dict[str, str]:
    return signed_headers(CONS_ID, SECRET, "antrean", method="POST", now=time.time())


async def writes(url: str, clients: int, seconds: float, tag: str) -> list[float]:
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        i = 0
        while time.monotonic() < stop_at:
            body = json.dumps({"kodebooking": f"{tag}-{n}-{i}", "taskid": 1}).encode()
            started = time.monotonic()
            async with session.post(url + ADD_PATH, data=body, headers=headers()) as resp:
                await resp.read()
                if resp.status != 202:
                    raise SystemExit(f"write answered {resp.status}")
            latencies.append(time.monotonic() - started)
            i += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(n, session) for n in range(clients)))
    return latencies


async def slow_socket(host: str, port: int, n: int, closed: list[float]) -> None:
    """Holds one slow request open until the server closes it; records after how long."""
    reader, writer = await asyncio.open_connection(host, port)
    opened = time.monotonic()
    h = "".join(f"{k}: {v}\r\n" for k, v in headers().items())
    try:
        if n % 2:
            writer.write(f"POST {ADD_PATH} HTTP/1.1\r\nHost: x\r\n{h}".encode())
        else:
            writer.write(f"POST {ADD_PATH} HTTP/1.1\r\nHost: x\r\n{h}"
                         "Content-Length: 100000\r\n\r\n{".encode())
        while True:
            try:
                if not await asyncio.wait_for(reader.read(65536), 0.5):
                    break  # closed by the server
            except TimeoutError:
                if n % 2 == 0:
                    writer.write(b" ")  # the trickle: one byte every half second
                    await writer.drain()
        closed.append(time.monotonic() - opened)
    except (ConnectionError, asyncio.CancelledError):
        if not asyncio.current_task().cancelling():  # type: ignore[union-attr]
            closed.append(time.monotonic() - opened)
    finally:
        writer.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def one_round(url: str, port: int, args: argparse.Namespace, attack: bool,
                    n: int) -> dict[str, Any]:
    closed: list[float] = []
    slow = []
    if attack:
        slow = [asyncio.ensure_future(slow_socket("127.0.0.1", port, i, closed))
                for i in range(args.slow)]
        await asyncio.sleep(0.5)  # let them connect before the measured writes start
    lat = await writes(url, args.clients, args.duration, f"R{n}{'A' if attack else 'Q'}")
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)
    out = {"mode": "attack" if attack else "quiet", "writes": len(lat),
           "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "max_ms": max(lat) * 1000}
    if attack:
        out["slow_closed"] = len(closed)
        out["slow_closed_after_s"] = round(statistics.median(closed), 2) if closed else None
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    port, admin_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = tenang_config(Path(tmp), port, admin_port, args.timeout)
        env = {**os.environ, "TENANG_ADMIN_TOKEN": "bench-admin-token", SECRET_ENV: SECRET}
        tenang = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config",
                                   str(config)], env=env, cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{admin_port}/healthz", tenang)
            url = f"http://127.0.0.1:{port}"
            results = []
            for n in range(args.rounds):
                for attack in (False, True) if n % 2 == 0 else (True, False):
                    results.append(asyncio.run(one_round(url, port, args, attack, n)))
                    print(json.dumps(results[-1]), flush=True)
            return results
        finally:
            stop(tenang)


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"\n{platform.node()} nproc={os.cpu_count()} slow={args.slow} "
          f"clients={args.clients} duration={args.duration}s timeout={args.timeout}s")
    for mode in ("quiet", "attack"):
        rs = [r for r in results if r["mode"] == mode]
        print(f"{mode:6}: p50 {statistics.median(r['p50_ms'] for r in rs):6.1f} ms  "
              f"p99 {statistics.median(r['p99_ms'] for r in rs):6.1f} ms  "
              f"max {max(r['max_ms'] for r in rs):6.1f} ms  "
              f"writes/round {statistics.median(r['writes'] for r in rs):.0f}")
    attack = [r for r in results if r["mode"] == "attack"]
    print("slow sockets closed by the server per round:",
          [(r["slow_closed"], r["slow_closed_after_s"]) for r in attack])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slow", type=int, default=500, help="slow sockets in attack rounds")
    p.add_argument("--clients", type=int, default=8, help="concurrent normal writers")
    p.add_argument("--duration", type=float, default=6.0, help="seconds per round")
    p.add_argument("--timeout", type=float, default=3.0,
                   help="server.header_timeout_s and body_timeout_s")
    p.add_argument("--rounds", type=int, default=3, help="pairs of rounds")
    args = p.parse_args()
    report(args, run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
