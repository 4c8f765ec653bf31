"""Issue 13's "Global rate and one probe", with `tenang serve` processes on one
PostgreSQL database in front of the BPJS simulator (its own process, over HTTP), signed
SIMRS calls:

- **Global rate.** With ``per_second = 50`` and the simulator up, three instances
  deliver a backlog spread over them: in no second does the simulator receive more than
  55 sends in total (each instance alone would send 50/s).
- **One probe.** During a 20 s outage with ``reset_timeout_s = 5``, the simulator
  receives as many probes from three instances as from one instance alone (±1): once
  the breaker is open everywhere, every send it receives is a probe.

What the simulator received is its own log (``GET /_sim/log``: each request's arrival
time on its clock, the machine's wall clock).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.chaos_load import CONS_ID, SECRET
from tests.bpjs_support import OUTAGE, booking
from tests.cluster_support import Cluster, Instance, busy, cluster_of, sim_control, summary
from tests.conftest import wait_until
from tests.pg_support import fresh_schema
from tests.signing import bpjs_headers

pytestmark = pytest.mark.slow

PER_SECOND, BACKLOG = 50.0, 400
RESET_TIMEOUT_S, OUTAGE_S = 5.0, 20.0
DELIVERED_S = 60.0


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def add(http: aiohttp.ClientSession, instance: Instance, kode: str) -> None:
    """A SIMRS's Antrean add, signed as the simulator's identity, accepted (202)."""
    async with http.post(f"{instance.gateway}/antreanrs/antrean/add", json=booking(kode),
                         headers=bpjs_headers(CONS_ID, SECRET)) as resp:
        assert resp.status == 202, await resp.text()


async def add_spread(http: aiohttp.ClientSession, instances: list[Instance],
                     kodes: list[str]) -> None:
    """The adds spread round-robin over ``instances``, 20 at a time."""
    gate = asyncio.Semaphore(20)

    async def one(instance: Instance, kode: str) -> None:
        async with gate:
            await add(http, instance, kode)
    await asyncio.gather(*(one(i, k) for i, k in zip(itertools.cycle(instances), kodes)))


async def arrivals(http: aiohttp.ClientSession, c: Cluster) -> list[float]:
    """When each request the simulator received arrived, in order."""
    log: list[dict[str, Any]] = await sim_control(http, c.sim_url, "GET", "log")
    return sorted(e["time"] for e in log)


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any 1 s window (each window starting at an arrival)."""
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)),
               default=0)


async def succeeded(http: aiohttp.ClientSession, c: Cluster) -> int:
    """Antrean writes delivered, in the shared store."""
    doc = await summary(http, c.instances[0].admin)
    return int(doc["upstreams"]["antrean"]["counts"].get("succeeded", 0))


async def delivered(http: aiohttp.ClientSession, c: Cluster, total: int) -> None:
    """Until every request is final and ``total`` Antrean writes succeeded."""
    async def done() -> bool:
        return (await busy(http, c.instances[0].admin) == 0
                and await succeeded(http, c) == total)
    await wait_until(done, DELIVERED_S, what=f"{total} writes delivered")


async def breakers(http: aiohttp.ClientSession, c: Cluster) -> set[str]:
    """The Antrean breaker's state as each instance sees it."""
    return {(await summary(http, i.admin))["upstreams"]["antrean"]["breaker"]["state"]
            for i in c.instances}


async def test_three_instances_together_send_at_most_55_a_second(
        tmp_path: Path, pg_url: str, http: aiohttp.ClientSession) -> None:
    async with cluster_of(tmp_path, pg_url, "a", "b", "c", per_second=PER_SECOND) as c:
        await add_spread(http, c.instances, [f"RATE-{n:04d}" for n in range(BACKLOG)])
        written = time.time()  # from here on the whole backlog waits: only pacing holds it
        await delivered(http, c, BACKLOG)
        times = await arrivals(http, c)
    assert len(times) == BACKLOG  # each add sent once: nothing failed, nothing resent
    later = [t for t in times if t >= written]
    paced = len(later) / (later[-1] - written)
    print(f"{BACKLOG} sends from 3 instances at per_second = {PER_SECOND:g}: busiest "
          f"second {busiest_second(times)}, {paced:.1f}/s once all was written "
          f"({len(later)} sends)")
    # Reaching the rate, never past 55. The average can be below it, not wrong, only
    # slow: the bucket saves up a twentieth of a second, so sends a stalled machine did
    # not take in time are lost (43-49/s at load 12 on 2 cores, 26-31/s at load 20,
    # where a second's burst caught up at 59/s with 82 in one second). Three instances
    # pacing themselves alone send about 150/s; each at a third of the rate, about 17.
    assert 40 <= busiest_second(times) <= 55, busiest_second(times)
    assert len(later) >= PER_SECOND  # the backlog outlasted the writing: pacing held it


async def probes_during_an_outage(http: aiohttp.ClientSession, c: Cluster, tag: str) -> int:
    """Sends the simulator receives during a 20 s outage once every instance's breaker
    is open (all probes); then BPJS comes back and the backlog is delivered."""
    before = await succeeded(http, c)
    started = time.time()
    await sim_control(http, c.sim_url, "POST", "mode", OUTAGE)
    kodes = [f"{tag}-{n:02d}" for n in range(3 * len(c.instances))]
    await add_spread(http, c.instances, kodes)  # each instance has its own to probe with

    async def all_open() -> bool:
        return "closed" not in await breakers(http, c)
    await wait_until(all_open, OUTAGE_S / 2, what="the breaker open on every instance")
    opened = time.time()
    # The outage itself, not a wait for something to happen: how long BPJS stays down.
    await asyncio.sleep(started + OUTAGE_S - time.time())
    await sim_control(http, c.sim_url, "POST", "mode", {"mode": "up"})
    probes = [t for t in await arrivals(http, c) if opened <= t < started + OUTAGE_S]
    print(f"{tag}: {len(c.instances)} instance(s), breaker open everywhere "
          f"{opened - started:.2f} s into the outage, {len(probes)} probes at "
          f"{[round(t - started, 2) for t in probes]} s")

    await delivered(http, c, before + len(kodes))

    async def all_closed() -> bool:
        return await breakers(http, c) == {"closed"}
    await wait_until(all_closed, DELIVERED_S, what="the breaker closed on every instance")
    return len(probes)


async def test_during_an_outage_three_instances_probe_as_often_as_one_alone(
        tmp_path: Path, pg_url: str, http: aiohttp.ClientSession) -> None:
    async with cluster_of(tmp_path, pg_url, "a", reset_timeout_s=RESET_TIMEOUT_S) as c:
        alone = await probes_during_an_outage(http, c, "ALONE")
        await c.start(http, "b", "c")
        three = await probes_during_an_outage(http, c, "THREE")
    # One probe each reset timeout, each failing: about 20 / 5 - 1 after the opening.
    assert alone >= OUTAGE_S / RESET_TIMEOUT_S - 2, alone
    assert abs(three - alone) <= 1, (three, alone)
