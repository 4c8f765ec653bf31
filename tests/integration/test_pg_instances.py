"""Three `tenang serve` processes on one PostgreSQL database in front of the BPJS
simulator (issue 13's first two acceptance tests), over real HTTP with signed calls:

- **Three instances, flipping upstream.** Writes spread over the three (Antrean add and
  tasks 1..7 in order per booking, SEP inserts, bed updates; every send goes to the next
  instance, so one booking's tasks pass through all three) while the simulator flips
  between down and up. Every acknowledged write reaches BPJS exactly once, each
  booking's tasks in order, and all end final.
- **Kill one.** kill -9 one of the three while it holds leases: the others deliver its
  requests after the lease, none lost, none applied twice.

The accounting is the chaos soak's (bench/chaos_account.py: the simulator's state and
log against the SIMRS's acknowledgements and the store's final statuses), the SIMRS the
chaos soak's writers (bench/chaos_load.py, signed with the simulator's credentials).
Writes: TENANG_PG_INSTANCES_WRITES (default 1,000; `.ci/run` runs 5,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bench.chaos import ADMIN_TOKEN, SECRET_ENV, tenang_config
from bench.chaos_account import Accountant, Figures
from bench.chaos_load import CONS_ID, SECRET, Ledger, Simrs
from bench.intake_bench import free_port
from proxy.store.postgres import INCOMPLETE
from tests.pg_support import fresh_schema

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WRITES = int(os.environ.get("TENANG_PG_INSTANCES_WRITES", "1000"))
# Only tests set it: `serve` on PostgreSQL before breakers, rates, backpressure and
# notifications are shared (proxy.store.postgres.INCOMPLETE). The queue, which these
# tests are about, is shared already.
ALLOW_INCOMPLETE = "TENANG_TEST_ALLOW_INCOMPLETE_PG"
START_S = 30.0
FINAL_S = 180.0


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


class SpreadSimrs(Simrs):
    """The chaos soak's SIMRS behind a round-robin balancer: each send (a resend too)
    goes to the next instance, so a dead one's callers are answered by the others."""

    def __init__(self, gateways: list[str], ledger: Ledger, tag: str) -> None:
        self._gateways = itertools.cycle(gateways)
        super().__init__(gateways[0], ledger, tag)

    @property
    def gateway(self) -> str:
        return next(self._gateways)

    @gateway.setter
    def gateway(self, _: str) -> None:
        pass


@dataclass
class Instance:
    name: str
    proc: subprocess.Popen[bytes]
    gateway: str
    admin: str
    log: Path


class Cluster:
    """The simulator and three Tenang instances, each a subprocess logging to ``work``."""

    def __init__(self, work: Path, pg_url: str) -> None:
        self.work, self.pg_url = work, pg_url
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
        config = tenang_config(folder, port, admin, self.sim_url)
        text = config.read_text()
        assert 'url = "sqlite:///./tenang.db"' in text
        config.write_text(text.replace('url = "sqlite:///./tenang.db"',
                                       f'url = "{self.pg_url}"'))
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, SECRET_ENV: SECRET}
        if INCOMPLETE is not None:
            env[ALLOW_INCOMPLETE] = "1"
        log = folder / "tenang.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        instance = Instance(name, proc, f"http://127.0.0.1:{port}",
                            f"http://127.0.0.1:{admin}", log)
        self.instances.append(instance)
        return instance

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


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Poll ``check`` until it holds, failing with ``what`` past the deadline."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.05)  # the polling interval of a deadline loop


async def answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as resp:
            return resp.status < 500
    except (aiohttp.ClientError, OSError):
        return False


async def sim_control(http: aiohttp.ClientSession, sim: str, method: str, path: str,
                      body: Any = None) -> Any:
    async with http.request(method, f"{sim}/_sim/{path}", json=body) as resp:
        assert resp.status < 400, await resp.text()
        return await resp.json()


def up(c: Cluster, http: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        for i in c.instances:
            assert i.proc.poll() is None, c.tails()
        return await answers(http, url)
    return check


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, pg_url)
    try:
        c.start_sim()
        # One instance first: it migrates the empty schema, the others find it done.
        for name in ("a", "b", "c"):
            c.start_instance(name)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for url in [f"{c.sim_url}/_sim/mode"] + [f"{i.admin}/healthz"
                                                     for i in c.instances]:
                await until(f"{url} answering", up(c, http, url), START_S)
        yield c
    finally:
        c.stop_all()


async def store_rows(pg_url: str) -> dict[str, tuple[str, str]]:
    conn = await asyncpg.connect(pg_url)
    try:
        return {r["id"]: (r["status"], r["reason"] or "")
                for r in await conn.fetch("SELECT id, status, reason FROM requests")}
    finally:
        await conn.close()


async def leased_by(pg_url: str, pid: int) -> list[str]:
    """The requests instance ``pid`` holds in flight (the relay's lease owner is
    host:pid:random)."""
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT id FROM requests WHERE status = 'in_flight' "
                                "AND lease_owner LIKE $1", f"%:{pid}:%")
        return [r["id"] for r in rows]
    finally:
        await conn.close()


async def busy(http: aiohttp.ClientSession, admin: str) -> int:
    """Requests pending or in flight, in the shared store (any instance answers)."""
    async with http.get(f"{admin}/api/v1/summary",
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        doc = await resp.json()
    return sum(u["counts"].get("pending", 0) + u["counts"].get("in_flight", 0)
               for u in doc["upstreams"].values())


async def accepted(admin: str) -> float:
    """Requests this instance stored and answered (its /metrics)."""
    async with aiohttp.ClientSession() as http, http.get(f"{admin}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tenang_requests_accepted_total{"))


async def load(c: Cluster, http: aiohttp.ClientSession, ledger: Ledger, writes: int,
               during: Callable[[], Coroutine[Any, Any, None]],
               done: Callable[[], bool] = lambda: True) -> None:
    """``writes`` acknowledged writes over the instances while ``during`` runs (and
    until ``done``)."""
    simrs = SpreadSimrs([i.gateway for i in c.instances], ledger, "PG")
    work = asyncio.create_task(simrs.run(bookings=8, rooms=3, seps=3))
    chaos = asyncio.create_task(during())
    try:
        async def enough() -> bool:
            if work.done():
                work.result()  # a load error ends the test loudly
            return len(ledger.acks) >= writes and done()
        await until(f"{writes} writes acknowledged", enough, FINAL_S)
    finally:
        chaos.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chaos
        await sim_control(http, c.sim_url, "POST", "mode", {"mode": "up", "latency_ms": 0})
        simrs.stopping.set()
        await asyncio.wait_for(work, timeout=60)  # each writer finishes its booking
        await simrs.close()


async def account(c: Cluster, http: aiohttp.ClientSession, ledger: Ledger) -> Figures:
    live = next(i for i in c.instances if i.proc.poll() is None)

    async def settled() -> bool:
        return await busy(http, live.admin) == 0
    await until("every request final", settled, FINAL_S)
    state = await sim_control(http, c.sim_url, "GET", "state")
    log = await sim_control(http, c.sim_url, "GET", "log")
    return Accountant(ledger.acks, state, log, await store_rows(c.pg_url), c.kills).run()


def assert_exactly_once(figures: Figures, ledger: Ledger, writes: int) -> None:
    summary = figures.as_dict()
    assert sum(figures.acknowledged.values()) >= writes, summary
    assert set(figures.acknowledged) == {"add", "task", "bed", "sep"}, summary
    assert not ledger.refused, ledger.refused[:5]
    assert figures.violations() == 0, summary  # lost, twice, resent, reordered, not final


async def test_three_instances_with_a_flipping_upstream_deliver_each_write_once_in_order(
        cluster: Cluster) -> None:
    ledger = Ledger()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async def flip() -> None:
            for mode in itertools.cycle(("down", "up")):
                await sim_control(http, cluster.sim_url, "POST", "mode", {"mode": mode})
                await asyncio.sleep(0.7)  # how long BPJS stays down or up: the chaos itself

        started = time.monotonic()
        await load(cluster, http, ledger, WRITES, flip)
        figures = await account(cluster, http, ledger)
    print(f"{sum(figures.acknowledged.values())} writes over 3 instances, flipping: "
          f"{time.monotonic() - started:.1f} s; {figures.as_dict()['statuses']}")
    assert_exactly_once(figures, ledger, WRITES)
    for instance in cluster.instances:  # the spread is real: each took its share
        assert await accepted(instance.admin) > WRITES / 6, instance.name


async def test_killing_one_of_three_loses_nothing_and_sends_nothing_twice(
        cluster: Cluster) -> None:
    ledger = Ledger()
    victim = cluster.instances[1]
    orphaned: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        # Slow answers: the victim's deliveries are in flight long enough to be cut.
        await sim_control(http, cluster.sim_url, "POST", "mode",
                          {"mode": "up", "latency_ms": 150})

        async def kill_mid_load() -> None:
            async def holds_leases() -> bool:
                orphaned[:] = await leased_by(cluster.pg_url, victim.proc.pid)
                return len(orphaned) > 0 and len(ledger.acks) >= WRITES // 3
            await until("the victim holding leases", holds_leases, FINAL_S)
            cluster.kill(victim)
            # What it still held when it died: only the others can finish these.
            orphaned[:] = await leased_by(cluster.pg_url, victim.proc.pid)
            await asyncio.Event().wait()  # the load goes on over the other two

        started = time.monotonic()
        await load(cluster, http, ledger, WRITES, kill_mid_load, lambda: bool(cluster.kills))
        figures = await account(cluster, http, ledger)
    print(f"{sum(figures.acknowledged.values())} writes, one instance killed with "
          f"{len(orphaned)} leases: {time.monotonic() - started:.1f} s")
    assert cluster.kills and orphaned
    assert_exactly_once(figures, ledger, WRITES)
    rows = await store_rows(cluster.pg_url)
    assert all(rows[i][0] not in ("pending", "in_flight") for i in orphaned), \
        [(i, rows[i]) for i in orphaned]
