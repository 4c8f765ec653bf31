"""Several `tenang serve` processes on one PostgreSQL database in front of the BPJS
simulator, each a subprocess logging to a folder of its own (issue 13's acceptance
tests: tests/integration/test_pg_instances.py and test_pg_probes.py).

The simulator is the chaos soak's (``tenang simulate-bpjs`` with bench/chaos_load.py's
identity), each instance's config the chaos soak's (bench/chaos.py) on the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.chaos import ADMIN_TOKEN, SECRET_ENV, tenang_config
from bench.chaos_load import CONS_ID, SECRET
from bench.intake_bench import free_port
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[1]
START_S = 30.0
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Instance:
    name: str
    proc: subprocess.Popen[bytes]
    gateway: str
    admin: str
    log: Path


class Cluster:
    """The simulator and the Tenang instances, each a subprocess logging to ``work``;
    ``config`` goes to every instance's config (bench.chaos.tenang_config)."""

    def __init__(self, work: Path, pg_url: str, **config: float) -> None:
        self.work, self.pg_url, self.config = work, pg_url, config
        self.sim_url = f"http://127.0.0.1:{free_port()}"
        self.sim: subprocess.Popen[bytes] | None = None
        self.instances: list[Instance] = []
        self.kills: list[float] = []

    def start_sim(self) -> None:
        with (self.work / "sim.log").open("ab") as out:
            self.sim = subprocess.Popen(
                [sys.executable, "-m", "proxy", "simulate-bpjs", "--listen",
                 self.sim_url.removeprefix("http://"), "--cons-id", CONS_ID,
                 "--secret", SECRET, "--seed", "13", "--aplicare-autocreate",
                 "--timeout-hang-s", "3"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def start_instance(self, name: str) -> Instance:
        folder = self.work / name
        folder.mkdir()
        port, admin = free_port(), free_port()
        config = tenang_config(folder, port, admin, self.sim_url, **self.config)
        text = config.read_text()
        assert 'url = "sqlite:///./tenang.db"' in text
        config.write_text(text.replace('url = "sqlite:///./tenang.db"',
                                       f'url = "{self.pg_url}"'))
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, SECRET_ENV: SECRET}
        log = folder / "tenang.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        instance = Instance(name, proc, f"http://127.0.0.1:{port}",
                            f"http://127.0.0.1:{admin}", log)
        self.instances.append(instance)
        return instance

    async def start(self, http: aiohttp.ClientSession, *names: str) -> list[Instance]:
        """Start the instances ``names`` and wait until each answers."""
        started = [self.start_instance(name) for name in names]
        for instance in started:
            url = f"{instance.admin}/healthz"
            await wait_until(up(self, http, url), START_S, what=f"{url} answering")
        return started

    def kill(self, instance: Instance) -> None:
        instance.proc.send_signal(signal.SIGKILL)  # no shutdown, no cleanup
        instance.proc.wait(timeout=10)
        self.kills.append(time.time())

    def stop_all(self) -> None:
        procs = [i.proc for i in self.instances] + ([self.sim] if self.sim else [])
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def tails(self) -> str:
        return "\n".join(f"--- {i.name}\n" + "\n".join(
            i.log.read_text(errors="replace").splitlines()[-30:]) for i in self.instances)


@asynccontextmanager
async def cluster_of(work: Path, pg_url: str, *names: str,
                     **config: float) -> AsyncIterator[Cluster]:
    """The simulator and the instances ``names``, all answering; all stopped after."""
    c = Cluster(work, pg_url, **config)
    try:
        c.start_sim()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            url = f"{c.sim_url}/_sim/mode"
            await wait_until(up(c, http, url), START_S, what=f"{url} answering")
            # All at once: the first to connect migrates the empty schema, the others
            # find it done (or wait on its lock).
            await c.start(http, *names)
        yield c
    finally:
        c.stop_all()


async def answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as resp:
            return resp.status < 500
    except (aiohttp.ClientError, OSError):
        return False


def up(c: Cluster, http: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[bool]]:
    """A check that ``url`` answers, failing at once when an instance has died."""
    async def check() -> bool:
        for i in c.instances:
            assert i.proc.poll() is None, c.tails()
        return await answers(http, url)
    return check


async def sim_control(http: aiohttp.ClientSession, sim: str, method: str, path: str,
                      body: Any = None) -> Any:
    async with http.request(method, f"{sim}/_sim/{path}", json=body) as resp:
        assert resp.status < 400, await resp.text()
        return await resp.json()


async def summary(http: aiohttp.ClientSession, admin: str) -> dict[str, Any]:
    """The instance's ``/api/v1/summary``: the shared store's counts, its own breakers."""
    async with http.get(f"{admin}/api/v1/summary", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 200, await resp.text()
        doc: dict[str, Any] = await resp.json()
    return doc


async def busy(http: aiohttp.ClientSession, admin: str) -> int:
    """Requests pending or in flight, in the shared store (any instance answers)."""
    doc = await summary(http, admin)
    return sum(u["counts"].get("pending", 0) + u["counts"].get("in_flight", 0)
               for u in doc["upstreams"].values())
