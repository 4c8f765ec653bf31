"""Chaos soak: kill -9 a real ``tenang serve`` at random moments under concurrent mixed
load, restart it on the same database, and account for every acknowledged write from
what the BPJS simulator ended up with (bench/chaos_account.py).

The simulator runs as its own process (``tenang simulate-bpjs``) so it outlives every
kill; between rounds it is switched up, flaky or down, and one-shot ``reset-after-apply``
faults are queued (BPJS applied the call, the answer is lost). At the end the simulator
comes up and the soak waits (with a deadline) until Tenang holds nothing pending or in
flight, stops it, and counts: lost, applied twice, reordered, held (see chaos_account).

    .venv/bin/python bench/chaos.py --rounds 10         # CI's short form (~1-2 min)
    .venv/bin/python bench/chaos.py --rounds 50 --seed 7  # the long form (RESULTS.md)

Exit status 1 on any violation (lost, applied twice, unjustified resend, reordered,
not final) or when nothing was acknowledged; one JSON line with the figures is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.chaos_account import account, dump
from bench.chaos_load import CONS_ID, SECRET, Ledger, Simrs
from bench.common import server_store_toml
from bench.intake_bench import free_port

REPO = Path(__file__).resolve().parents[1]
SECRET_ENV = "TENANG_CHAOS_SECRET"
ADMIN_TOKEN = "chaos-admin-token"
SERVICES = (("antrean", "/antreanrs"), ("vclaim", "/vclaim-rest"), ("aplicare", "/aplicaresws"))
FAULT_PATHS = ("antrean/add", "antrean/updatewaktu", "SEP/2.0/insert", "bed/update",
               "HistoriPelayanan")


def tenang_config(work: Path, port: int, admin_port: int, sim: str, *,
                  reset_timeout_s: float = 0.3, per_second: float = 100000.0) -> Path:
    """The soak's config: every upstream retries fast, its breaker opens after 5 failures
    and probes ``reset_timeout_s`` later, and ``per_second`` hardly paces it by default."""
    upstreams = "".join(f"""
[[upstreams]]
name = "{name}"
prefix = "{prefix}"
target = "{sim}{prefix}"
preset = "{name}"
cons_id = "{CONS_ID}"
secret_env = "{SECRET_ENV}"
timeout_s = 2.0

[upstreams.retry]
max_attempts = 1000
initial_delay_s = 0.05
max_delay_s = 0.5

[upstreams.breaker]
fail_max = 5
reset_timeout_s = {reset_timeout_s}

[upstreams.rate]
per_second = {per_second}
max_concurrency = 16
""" for name, prefix in SERVICES)
    path = work / "tenang.toml"
    path.write_text(server_store_toml(port, admin_port) + f"""
[relay]
lease_margin_s = 1.0
poll_interval_s = 0.05
shutdown_grace_s = 1.0
{upstreams}""")
    return path


class Processes:
    """The simulator and the Tenang under test, as subprocesses logging to ``work``."""

    def __init__(self, work: Path, seed: int) -> None:
        self.work = work
        self.sim_port, self.port, self.admin_port = free_port(), free_port(), free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.gateway = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.config = tenang_config(work, self.port, self.admin_port, self.sim_url)
        self.seed = seed
        self.sim: subprocess.Popen[bytes] | None = None
        self.tenang: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start_sim(self) -> None:
        with (self.work / "sim.log").open("ab") as out:
            self.sim = subprocess.Popen(
                [sys.executable, "-m", "proxy", "simulate-bpjs", "--listen",
                 f"127.0.0.1:{self.sim_port}", "--cons-id", CONS_ID, "--secret", SECRET,
                 "--seed", str(self.seed), "--aplicare-autocreate", "--timeout-hang-s", "3"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def start_tenang(self) -> None:
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, SECRET_ENV: SECRET}
        with (self.work / "tenang.log").open("ab") as out:
            self.tenang = subprocess.Popen(
                [sys.executable, "-m", "proxy", "serve", "--config", str(self.config)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def kill_tenang(self) -> float:
        assert self.tenang is not None
        self.tenang.send_signal(signal.SIGKILL)  # no shutdown, no cleanup
        self.tenang.wait(timeout=10)
        return time.time()

    def stop(self, proc: subprocess.Popen[bytes] | None) -> int | None:
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def tail(self) -> str:
        text = (self.work / "tenang.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-40:])


async def wait_until_up(http: aiohttp.ClientSession, url: str,
                        proc: subprocess.Popen[bytes] | None, what: str,
                        timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            async with http.get(url) as resp:
                if resp.status < 500:
                    return
        except (aiohttp.ClientError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {timeout_s} s")
        await asyncio.sleep(0.05)


async def sim_control(http: aiohttp.ClientSession, sim: str, method: str, path: str,
                      body: Any = None) -> Any:
    async with http.request(method, f"{sim}/_sim/{path}", json=body) as resp:
        doc = await resp.json()
        if resp.status >= 400:
            raise SystemExit(f"/_sim/{path}: {doc}")
        return doc


async def chaos_step(http: aiohttp.ClientSession, procs: Processes, rng: random.Random,
                     ) -> str:
    """Switch the simulator's mode and queue one-shot faults for the next round."""
    mode = rng.choices(["up", "flaky", "down"], weights=[5, 3, 2])[0]
    await sim_control(http, procs.sim_url, "POST", "mode",
                      {"mode": mode, "error_rate": 0.3, "latency_ms": rng.choice([0, 5, 30])})
    for _ in range(rng.randint(1, 4)):
        await sim_control(http, procs.sim_url, "POST", "faults",
                          {"path_contains": rng.choice(FAULT_PATHS),
                           "action": "reset-after-apply"})
    return mode


async def wait_final(http: aiohttp.ClientSession, admin: str, timeout_s: float) -> int:
    """Until no request is pending or in flight (held, failed, dead count as final)."""
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    while True:
        async with http.get(f"{admin}/api/v1/summary", headers=headers) as resp:
            doc = await resp.json()
        busy = sum(u["counts"].get("pending", 0) + u["counts"].get("in_flight", 0)
                   for u in doc["upstreams"].values())
        if not busy or time.monotonic() > deadline:
            return int(busy)
        await asyncio.sleep(0.2)


async def soak(args: argparse.Namespace, procs: Processes) -> tuple[Ledger, list[float],
                                                                      list[str], int]:
    rng = random.Random(args.seed)
    ledger, kills, modes = Ledger(), [], []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        procs.start_sim()
        await wait_until_up(http, f"{procs.sim_url}/_sim/mode", procs.sim, "simulator")
        procs.start_tenang()
        await wait_until_up(http, f"{procs.admin}/healthz", procs.tenang, "tenang")
        simrs = Simrs(procs.gateway, ledger, f"{args.seed % 10_000:04d}", args.think_ms / 1000)
        load = asyncio.create_task(simrs.run(args.bookings, args.rooms, args.seps))
        try:
            for r in range(args.rounds):
                modes.append(await chaos_step(http, procs, rng))
                await asyncio.sleep(rng.uniform(args.min_s, args.max_s))  # a random moment
                if load.done():
                    load.result()  # a load error ends the soak loudly
                kills.append(procs.kill_tenang())
                procs.start_tenang()
                await wait_until_up(http, f"{procs.admin}/healthz", procs.tenang, "tenang")
                print(f"round {r + 1}/{args.rounds}: simulator {modes[-1]}, killed; "
                      f"{len(ledger.acks)} acknowledged so far", flush=True)
            await sim_control(http, procs.sim_url, "POST", "mode", {"mode": "up"})
            await sim_control(http, procs.sim_url, "DELETE", "faults")
            simrs.stopping.set()
            await asyncio.wait_for(load, timeout=60)  # each writer finishes its write
        finally:
            await simrs.close()
        busy = await wait_final(http, procs.admin, args.final_timeout)
    return ledger, kills, modes, busy


async def simulator_record(sim: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with aiohttp.ClientSession() as http:
        state = await sim_control(http, sim, "GET", "state")
        log = await sim_control(http, sim, "GET", "log")
    return state, log


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tenang-chaos-") as tmp:
        procs = Processes(Path(tmp), args.seed)
        try:
            ledger, kills, modes, busy = asyncio.run(soak(args, procs))
            code = procs.stop(procs.tenang)  # SIGTERM: the store is final and readable
            state, log = asyncio.run(simulator_record(procs.sim_url))
        except BaseException:
            if procs.tenang is not None:
                print(procs.tail(), file=sys.stderr)
            raise
        finally:
            procs.stop(procs.tenang)
            procs.stop(procs.sim)
        figures = account(ledger.acks, state, log, Path(tmp) / "tenang.db", kills)
    result = {"rounds": args.rounds, "seed": args.seed, "kills": len(kills),
              "modes": {m: modes.count(m) for m in set(modes)},
              "seconds": round(time.monotonic() - started, 1),
              "client_resends": dict(ledger.resends), "refused": len(ledger.refused),
              "pending_at_deadline": busy, "tenang_exit": code,
              "simulator_requests": len(log), **figures.as_dict()}
    print(dump(figures))
    print(json.dumps(result, sort_keys=True))
    if ledger.refused:
        print(f"refused writes (4xx): {ledger.refused[:5]}")
    failed = figures.violations() or ledger.refused or not ledger.acks or busy
    print("CHAOS SOAK " + ("FAILED" if failed else "PASSED"))
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10, help="kill -9 rounds (CI: 10)")
    p.add_argument("--seed", type=int, default=int(time.time()) % 100_000,
                   help="seeds the kill moments, modes, faults and the simulator")
    p.add_argument("--min-s", type=float, default=0.3, help="shortest time between kills")
    p.add_argument("--max-s", type=float, default=2.5, help="longest time between kills")
    p.add_argument("--bookings", type=int, default=6, help="concurrent booking writers")
    p.add_argument("--rooms", type=int, default=4, help="rooms (one writer each)")
    p.add_argument("--seps", type=int, default=4, help="concurrent SEP writers")
    p.add_argument("--think-ms", type=float, default=20.0,
                   help="pause of a room or SEP writer between two writes")
    p.add_argument("--final-timeout", type=float, default=60.0,
                   help="how long the end waits for every request to be final")
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
