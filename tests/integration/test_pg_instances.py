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
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bench.chaos_account import Accountant, Figures
from bench.chaos_load import Ledger, Simrs
from tests.cluster_support import Cluster, busy, cluster_of, sim_control
from tests.conftest import wait_until
from tests.pg_support import fresh_schema

pytestmark = pytest.mark.slow

WRITES = int(os.environ.get("TENANG_PG_INSTANCES_WRITES", "1000"))
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


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str) -> AsyncIterator[Cluster]:
    async with cluster_of(tmp_path, pg_url, "a", "b", "c") as c:
        yield c


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
        await wait_until(enough, FINAL_S, what=f"{writes} writes acknowledged")
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
    await wait_until(settled, FINAL_S, what="every request final")
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
        # Slow answers: the victim's deliveries are in flight long enough to be cut. At
        # 150 ms they could all end between seeing the victim's leases and killing it on
        # a slow 2-core VM (CI, 1 run in 2 there), leaving it nothing to orphan.
        await sim_control(http, cluster.sim_url, "POST", "mode",
                          {"mode": "up", "latency_ms": 600})

        async def kill_mid_load() -> None:
            async def holds_leases() -> bool:
                orphaned[:] = await leased_by(cluster.pg_url, victim.proc.pid)
                return len(orphaned) > 0 and len(ledger.acks) >= WRITES // 3
            await wait_until(holds_leases, FINAL_S, what="the victim holding leases")
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
