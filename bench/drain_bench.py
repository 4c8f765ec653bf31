"""Drain benchmark: Tenang's replay after an outage against a plain pass-through proxy.

Each round puts N Antrean bookings (``antrean/add``, one booking each, signed) through one
of two paths to the same BPJS simulator, at the same concurrency:

- **tenang**: the simulator is down while the N writes are accepted (every one must get
  202), then it comes up and Tenang drains its queue with pacing off
  (``rate.per_second`` unbounded, ``rate.max_concurrency`` = the concurrency);
- **pass-through**: a plain aiohttp proxy (same event loop) forwards each write live while
  a client pushes the N writes through it at that concurrency.

The rate of each is read from the simulator's own log: applied writes between the first
and the last one applied, so the breaker's reset wait before the drain does not count.
The same log gives the accounting: every booking applied exactly once (0 lost, 0 applied
twice). Rounds alternate between the two paths; medians are compared.

    .venv/bin/python bench/drain_bench.py [--writes 10000] [--concurrency 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import booking_body, server_store_toml
from bench.intake_bench import free_port, stop, wait_http
from proxy.bpjs.simulator.client import signed_headers
from proxy.loop import new_event_loop

REPO = Path(__file__).resolve().parents[1]
CONS_ID = "12345"
SECRET = "bench-drain-secret"
SECRET_ENV = "TENANG_BENCH_SECRET"
ADMIN_TOKEN = "bench-admin-token"
ADD_PATH = "/antreanrs/antrean/add"
TARGET_RATIO = 0.8


def booking(kode: str) -> bytes:
    return json.dumps(booking_body(kode, "drain bench"), separators=(",", ":")).encode()


def tenang_config(work: Path, port: int, admin_port: int, sim_port: int,
                  concurrency: int) -> Path:
    path = work / "tenang.toml"
    path.write_text(server_store_toml(port, admin_port) + f"""
[relay]
poll_interval_s = 0.2

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "http://127.0.0.1:{sim_port}/antreanrs"
preset = "antrean"
cons_id = "{CONS_ID}"
secret_env = "{SECRET_ENV}"
timeout_s = 10.0

[upstreams.retry]
initial_delay_s = 0.2
max_delay_s = 1.0
max_attempts = 1000

[upstreams.breaker]
fail_max = 5
reset_timeout_s = 0.5

[upstreams.rate]
per_second = 1000000.0
max_concurrency = {concurrency}
""")
    return path


def serve_passthrough(port: int, target: str, concurrency: int) -> None:
    """The baseline: a plain aiohttp proxy that forwards each request live, headers and
    body unchanged, over a pooled client limited to the same concurrency."""
    from aiohttp import web

    skip = {"host", "content-length", "connection", "transfer-encoding"}

    async def client_ctx(app: web.Application) -> Any:
        app["http"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency))
        yield
        await app["http"].close()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with request.app["http"].request(request.method, target + request.path_qs,
                                               data=body, headers=headers) as resp:
            answer = await resp.read()
            return web.Response(status=resp.status, body=answer,
                                content_type=resp.content_type)

    app = web.Application()
    app.cleanup_ctx.append(client_ctx)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                backlog=1024, loop=new_event_loop())


async def push(url: str, codes: list[str], concurrency: int) -> Counter[int]:
    """Send one signed add per booking code, ``concurrency`` at a time; HTTP statuses."""
    statuses: Counter[int] = Counter()
    queue = iter(codes)
    signed: dict[int, dict[str, str]] = {}

    def headers() -> dict[str, str]:
        second = int(time.time())
        if second not in signed:  # a SIMRS's header set, fresh every second
            signed.clear()
            signed[second] = signed_headers(CONS_ID, SECRET, "antrean", method="POST",
                                            now=second)
        return signed[second]

    async def worker(http: aiohttp.ClientSession) -> None:
        for code in queue:
            async with http.post(url + ADD_PATH, data=booking(code),
                                 headers=headers()) as resp:
                await resp.read()
                statuses[resp.status] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return statuses


async def sim_call(sim: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{sim}/_sim/{path}", json=body) as resp:
        return await resp.json()


async def applied(sim: str, codes: set[str]) -> list[dict[str, Any]]:
    log = await sim_call(sim, "GET", "log?path_contains=antrean/add")
    return [e for e in log if isinstance(e.get("body"), dict)
            and e["body"].get("kodebooking") in codes and e["applied"]]


async def wait_drained(admin: str, timeout_s: float) -> None:
    """Until Tenang holds nothing pending or in flight. Polls the admin summary (cheap):
    polling the simulator's log instead would load the process being measured."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        while time.monotonic() < deadline:
            async with http.get(f"{admin}/api/v1/summary") as resp:
                doc = await resp.json()
            counts = doc["upstreams"]["antrean"]["counts"]
            if counts["pending"] + counts["in_flight"] == 0:
                return
            await asyncio.sleep(0.25)
    raise SystemExit(f"Tenang did not drain within {timeout_s} s")


def account(entries: list[dict[str, Any]], codes: set[str], statuses: Counter[int],
            ) -> dict[str, Any]:
    per_code = Counter(e["body"]["kodebooking"] for e in entries)
    times = sorted(e["time"] for e in entries)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {"rate": (len(times) - 1) / span if span and span > 0 else 0.0,
            "span_s": round(span, 3), "applied": len(per_code),
            "lost": len(codes - set(per_code)),
            "twice": sum(1 for n in per_code.values() if n > 1),
            "statuses": dict(statuses)}


async def tenang_round(sim: str, gateway: str, admin: str, pid: int, n: int,
                       concurrency: int, tag: str, timeout_s: float) -> dict[str, Any]:
    codes = [f"DRN{tag}{i:06d}" for i in range(n)]
    await sim_call(sim, "POST", "mode", {"mode": "down"})
    statuses = await push(gateway, codes, concurrency)
    if statuses.get(202, 0) != n:
        raise SystemExit(f"tenang did not accept every write: {dict(statuses)}")
    before = cpu_seconds(pid)  # the drain's CPU only, not the intake's
    await sim_call(sim, "POST", "mode", {"mode": "up"})
    await wait_drained(admin, timeout_s)
    result = account(await applied(sim, set(codes)), set(codes), statuses)
    result["cpu_s"] = round(cpu_seconds(pid) - before, 2)
    return result


async def passthrough_round(sim: str, proxy: str, pid: int, n: int, concurrency: int,
                            tag: str) -> dict[str, Any]:
    codes = [f"PST{tag}{i:06d}" for i in range(n)]
    await sim_call(sim, "POST", "mode", {"mode": "up"})
    before = cpu_seconds(pid)
    statuses = await push(proxy, codes, concurrency)  # live: applied once answered
    result = account(await applied(sim, set(codes)), set(codes), statuses)
    result["cpu_s"] = round(cpu_seconds(pid) - before, 2)
    return result


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def rounds(args: argparse.Namespace, sim: str, gateway: str, admin: str, proxy: str,
                 pids: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {"tenang": [], "pass-through": []}
    for r in range(args.rounds):
        for name in (("tenang", "pass-through") if r % 2 == 0
                     else ("pass-through", "tenang")):
            await sim_call(sim, "POST", "reset")  # keep the simulator's log small
            if name == "tenang":
                result = await tenang_round(sim, gateway, admin, pids[name], args.writes,
                                            args.concurrency, f"{r}", args.timeout)
            else:
                result = await passthrough_round(sim, proxy, pids[name], args.writes,
                                                 args.concurrency, f"{r}")
            runs[name].append(result)
            print(f"round {r + 1} {name:<13} {result['rate']:>8.0f} writes/s over "
                  f"{result['span_s']} s, applied {result['applied']}, lost "
                  f"{result['lost']}, twice {result['twice']}, cpu {result['cpu_s']} s",
                  flush=True)
    return runs


def run(args: argparse.Namespace) -> int:
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="tenang-drain-") as tmp:
        work = Path(tmp)
        sim_port, port, admin_port, proxy_port = (free_port() for _ in range(4))
        sim_url = f"http://127.0.0.1:{sim_port}"
        config = tenang_config(work, port, admin_port, sim_port, args.concurrency)
        log = (work / "tenang.log").open("wb")
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, SECRET_ENV: SECRET}
        sim = subprocess.Popen(
            [py, "-m", "proxy", "simulate-bpjs", "--listen", f"127.0.0.1:{sim_port}",
             "--cons-id", CONS_ID, "--secret", SECRET, "--mode", "up"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        passthrough = subprocess.Popen(
            [py, __file__, "--serve-passthrough", str(proxy_port), sim_url,
             str(args.concurrency)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        tenang = subprocess.Popen([py, "-m", "proxy", "serve", "--config", str(config)],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{sim_url}/_sim/mode", sim)
            wait_http(f"http://127.0.0.1:{proxy_port}/", passthrough)
            wait_http(f"http://127.0.0.1:{admin_port}/healthz", tenang)
            runs = asyncio.run(rounds(args, sim_url, f"http://127.0.0.1:{port}",
                                      f"http://127.0.0.1:{admin_port}",
                                      f"http://127.0.0.1:{proxy_port}",
                                      {"tenang": tenang.pid, "pass-through": passthrough.pid}))
        finally:
            stop(tenang)
            stop(passthrough)
            stop(sim)
            log.close()
    return report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> int:
    med = {n: statistics.median(r["rate"] for r in rs) for n, rs in runs.items()}
    cpu = {n: statistics.median(r["cpu_s"] / args.writes * 1e6 for r in rs)
           for n, rs in runs.items()}
    ratio = med["tenang"] / med["pass-through"] if med["pass-through"] else 0.0
    lost = sum(r["lost"] for rs in runs.values() for r in rs)
    twice = sum(r["twice"] for rs in runs.values() for r in rs)
    print(f"{args.writes} writes per round, concurrency {args.concurrency}, "
          f"{args.rounds} alternating rounds; medians")
    print(f"pass-through {med['pass-through']:.0f} writes/s ({cpu['pass-through']:.0f} us "
          f"CPU per write), tenang drain {med['tenang']:.0f} writes/s ({cpu['tenang']:.0f} "
          f"us CPU per write while draining)")
    print(f"ratio tenang/pass-through: {ratio:.2f} (target >= {TARGET_RATIO}): "
          f"{'MET' if ratio >= TARGET_RATIO else 'MISSED'}; lost {lost}, applied twice {twice}")
    print(json.dumps({"writes": args.writes, "concurrency": args.concurrency,
                      "rounds": args.rounds, "tenang_rate": round(med["tenang"], 1),
                      "passthrough_rate": round(med["pass-through"], 1),
                      "ratio": round(ratio, 3), "lost": lost, "twice": twice,
                      "cpu_us_per_write": {k: round(v, 1) for k, v in cpu.items()},
                      "nproc": os.cpu_count(), "python": platform.python_version()}))
    return 0 if lost == 0 and twice == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writes", type=int, default=10_000, help="bookings per round")
    p.add_argument("--concurrency", type=int, default=64,
                   help="client connections, and Tenang's max_concurrency")
    p.add_argument("--rounds", type=int, default=3, help="rounds per path, alternating")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for a round's writes to be applied")
    p.add_argument("--serve-passthrough", nargs=3, metavar=("PORT", "TARGET", "LIMIT"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_passthrough:
        port, target, limit = args.serve_passthrough
        serve_passthrough(int(port), target, int(limit))
        return 0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
