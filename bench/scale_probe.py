"""What bench/scale_bench.py runs and reads: one Tenang with its own BPJS simulator and
store, signed intake load (wrk, or a Python client), admin-endpoint latencies, and the
process's CPU and memory from /proc."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import SQLITE_URL
from bench.drain_bench import ADD_PATH, CONS_ID, SECRET, SECRET_ENV, booking, sim_call
from bench.intake_bench import LUA, free_port, run_wrk, stop, wait_http
from proxy.bpjs.simulator.client import signed_headers

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-admin-token"


@dataclass
class Instance:
    name: str
    n: int
    work: Path
    token: str = TOKEN
    sim: subprocess.Popen[bytes] | None = None
    tenang: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    # The store Tenang serves: the SQLite file ``db`` (relative to the config), or a
    # PostgreSQL URL (scale_bench copies ``db`` there once it is built).
    store_url: str = SQLITE_URL

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.ports = {k: free_port() for k in ("sim", "gateway", "admin")}

    @property
    def db(self) -> Path:
        return self.work / "tenang.db"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sim']}"

    @property
    def pid(self) -> int:
        assert self.tenang is not None
        return self.tenang.pid

    def start_sim(self) -> None:
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "proxy", "simulate-bpjs", "--listen",
             f"127.0.0.1:{self.ports['sim']}", "--cons-id", CONS_ID, "--secret", SECRET,
             "--mode", "down"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_http(f"{self.sim_url}/_sim/mode", self.sim)

    def sim_mode(self, mode: str) -> None:
        if mode == "up":  # keep the simulator's log (and its memory) small
            asyncio.run(sim_call(self.sim_url, "POST", "reset"))
        asyncio.run(sim_call(self.sim_url, "POST", "mode", {"mode": mode}))

    def start_tenang(self, max_pending: int) -> None:
        config = self.work / "tenang.toml"
        config.write_text(CONFIG.format(gateway=self.ports["gateway"], admin=self.ports["admin"],
                                        sim=self.ports["sim"], cons_id=CONS_ID,
                                        secret_env=SECRET_ENV, max_pending=max_pending,
                                        store_url=self.store_url))
        env = {**os.environ, "TENANG_ADMIN_TOKEN": self.token, SECRET_ENV: SECRET}
        with (self.work / "tenang.log").open("ab") as log:
            self.tenang = subprocess.Popen(
                [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_tail(self) -> str:
        return (self.work / "tenang.log").read_text(errors="replace")[-3000:]

    def stop_tenang(self) -> None:
        if self.tenang is not None:
            stop(self.tenang)
            self.tenang = None

    def stop(self) -> None:
        self.stop_tenang()
        if self.sim is not None:
            stop(self.sim)
            self.sim = None


# Defaults everywhere but what the benchmark needs: pacing off (rate unbounded, 64 sends
# at once), a short breaker reset and retry delay so delivery starts soon after BPJS is up.
CONFIG = """\
[server]
listen = "127.0.0.1:{gateway}"
admin_listen = "127.0.0.1:{admin}"

[store]
url = "{store_url}"

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "http://127.0.0.1:{sim}/antreanrs"
preset = "antrean"
cons_id = "{cons_id}"
secret_env = "{secret_env}"
timeout_s = 5.0
max_pending = {max_pending}

[upstreams.retry]
initial_delay_s = 0.2
max_delay_s = 1.0
max_attempts = 1000

[upstreams.breaker]
fail_max = 5
reset_timeout_s = 1.0

[upstreams.rate]
per_second = 1000000.0
max_concurrency = 64
"""


def http_get(url: str, *, token: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                 if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def timed_ms(url: str, token: str | None = None) -> float:
    t0 = time.perf_counter()
    status, _ = http_get(url, token=token)
    if status not in (200, 503):
        raise SystemExit(f"GET {url}: HTTP {status}")
    return (time.perf_counter() - t0) * 1000


def latencies(inst: Instance, samples: int) -> dict[str, dict[str, float]]:
    """Median and max of each endpoint; scrapes of /metrics 1.1 s apart, so each one
    reads the store (the scrape shares one reading per second)."""
    out: dict[str, list[float]] = {"summary": [], "metrics": [], "readyz": []}
    for _ in range(samples):
        out["metrics"].append(timed_ms(f"{inst.admin}/metrics"))
        out["summary"].append(timed_ms(f"{inst.admin}/api/v1/summary", inst.token))
        out["readyz"].append(timed_ms(f"{inst.admin}/readyz"))
        time.sleep(1.1)
    return {k: {"median": round(statistics.median(v), 2), "max": round(max(v), 2)}
            for k, v in out.items()}


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB: now, and the peak since the process started."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    return values["VmRSS"], values["VmHWM"]


def signed_lua() -> str:
    """intake_bench's wrk script posting antrean/add bookings (a new code per request),
    with a signature made now: valid for the skew window (600 s), longer than a run."""
    head, tail = booking("@N@").decode().split("@N@")
    headers = signed_headers(CONS_ID, SECRET, "antrean", method="POST")
    script = LUA % {"head": head, "tail": tail, "cons_id": CONS_ID,
                    "timestamp": headers["X-timestamp"], "signature": headers["X-signature"]}
    lines = [line for line in script.splitlines() if not line.startswith("wrk.headers")]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def intake(inst: Instance, seconds: float, connections: int, tag: str) -> dict[str, Any]:
    """Closed-loop intake load for ``seconds``: wrk if installed, else a Python client."""
    if shutil.which("wrk") is None:
        return asyncio.run(python_load(inst.gateway + ADD_PATH, seconds, connections))
    script = inst.work / f"post-{tag}.lua"
    script.write_text(signed_lua())
    args = argparse.Namespace(threads=1, connections=connections)
    return run_wrk(inst.gateway + ADD_PATH, script, seconds, args)


async def python_load(url: str, seconds: float, connections: int) -> dict[str, Any]:
    headers = signed_headers(CONS_ID, SECRET, "antrean", method="POST")
    run = os.urandom(6).hex()
    latencies: list[float] = []
    counts = {"ok": 0, "status_errors": 0, "socket_errors": 0, "timeouts": 0}
    deadline = time.monotonic() + seconds

    async def worker(http: aiohttp.ClientSession, w: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            t0 = time.perf_counter()
            try:
                async with http.post(url, data=booking(f"{run}-{w}-{i}"),
                                     headers=headers) as resp:
                    await resp.read()
                    counts["ok" if resp.status < 400 else "status_errors"] += 1
            except TimeoutError:
                counts["timeouts"] += 1
            except aiohttp.ClientError:
                counts["socket_errors"] += 1
            latencies.append(time.perf_counter() - t0)

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                     timeout=timeout) as http:
        await asyncio.gather(*(worker(http, w) for w in range(connections)))
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    return {**counts, "requests": len(latencies), "rps": len(latencies) / seconds,
            "p99_ms": p99 * 1000}
