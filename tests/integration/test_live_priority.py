"""Live sends come before replays (deadline mode while a backlog drains).

After an outage (here a BPJS maintenance window) the relay replays the backlog under
every ``rate.max_concurrency`` slot for minutes. A SEP insert made at the counter
meanwhile must not be answered 202 at once: it waits for a slot up to its deadline,
takes the next one freed ahead of the relay and gets BPJS's live answer (the SEP
number). Only a deadline shorter than any slot takes to free makes it a 202, and it is
then sent once, by the relay. BPJS never sees more than ``max_concurrency`` at once.
Over real HTTP to the BPJS simulator, on SQLite (one instance); across PostgreSQL
instances: tests/integration/test_postgres_instances.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.lifecycle import Status
from tests.bpjs_support import bpjs_config, overtaking
from tests.conftest import admin_headers, wait_until
from tests.integration.test_live_attempts import card, parts
from tests.integration.test_modes import SEP_INSERT, Caller, t_sep

SLOTS = 2


async def draining(tmp_path: Path, sim: RunningSimulator, start_tenang: Any,
                   http: aiohttp.ClientSession, *, backlog: int, latency_ms: float,
                   deadline_ms: int) -> Caller:
    """Tenang for VClaim (``SLOTS`` send slots, SEP inserts with a ``deadline_ms``
    deadline) replaying ``backlog`` SEP inserts stored during a BPJS maintenance window
    (each answered 202) to a BPJS taking ``latency_ms`` per answer; returned once the
    relay has a send out under every slot."""
    cfg = bpjs_config(tmp_path, sim, "vclaim", timeout_s=latency_ms / 1000 + 3.0,
                      rate={"max_concurrency": SLOTS},
                      routes=[{"match": "POST SEP/{v}/insert", "deadline_ms": deadline_ms}])
    simrs = Caller(http, sim, await start_tenang(cfg), "vclaim")
    windows = f"{simrs.tenang.admin_url}/api/v1/maintenance"
    async with http.post(windows, headers=admin_headers(),
                         json={"upstream": "vclaim", "reason": "BPJS: pemeliharaan"}) as resp:
        assert resp.status == 201, await resp.text()
        window = await resp.json()
    for n in range(backlog):
        status, _, doc, _ = await simrs.call("POST", SEP_INSERT, t_sep(card(n)))
        assert status == 202, (status, doc)
    await sim.set_mode(latency_ms=latency_ms)
    # BPJS is back: one probe, then the replays under every slot.
    async with http.post(f"{windows}/{window['id']}/cancel", headers=admin_headers()) as resp:
        assert resp.status == 200, await resp.text()
    await wait_until(lambda: sim.state.answering == SLOTS,
                     what="the relay replaying under every slot")
    return simrs


async def succeeded(simrs: Caller) -> int:
    counts = (await simrs.tenang.backend.log.summary())["vclaim"].counts
    return int(counts.get(Status.SUCCEEDED, 0))


async def sent_for(sim: RunningSimulator, no_kartu: str) -> int:
    return sum(1 for e in await sim.log("SEP/2.0/insert")
               if no_kartu in str(e["body"]))


async def test_a_live_sep_insert_during_a_replay_gets_the_sep_number_ahead_of_the_backlog(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    # 24 replays at 0.3 s, two at a time: 3.6 s to drain, longer than the 3 s deadline,
    # so an answer within the deadline is one that went ahead of the backlog.
    backlog, latency_ms, deadline_ms = 24, 300, 3000
    simrs = await draining(tmp_path, bpjs_sim, start_tenang, http, backlog=backlog,
                           latency_ms=latency_ms, deadline_ms=deadline_ms)
    started, at = time.monotonic(), time.time()
    status, headers, doc, sent = await simrs.call("POST", SEP_INSERT, t_sep(card(backlog)))
    took = time.monotonic() - started
    assert (status, doc["metaData"]["code"]) == (200, "200"), doc
    sep = bpjs_sim.decrypt(doc, sent)["sep"]["noSep"]
    assert sep.startswith("0301R001")
    assert took < deadline_ms / 1000, took
    # The first slot back is handed to it; the other may go to a replay that reaches BPJS
    # while the live insert is being stored.
    overtook = overtaking(bpjs_sim, at, "SEP/2.0/insert", card(backlog))
    assert overtook <= 1, f"{overtook} replays reached BPJS first"
    print(f"live answer in {took:.2f} s, {overtook} replays sent meanwhile")

    await drained_sent_once(simrs, bpjs_sim, backlog, headers["X-Tenang-Request-Id"])


async def test_a_live_sep_insert_finding_no_slot_within_its_deadline_is_queued_and_sent_once(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    # Each replay is out 2 s; the SIMRS waits 0.3 s: no slot frees within it.
    backlog, latency_ms, deadline_ms = 4, 2000, 300
    simrs = await draining(tmp_path, bpjs_sim, start_tenang, http, backlog=backlog,
                           latency_ms=latency_ms, deadline_ms=deadline_ms)
    started = time.monotonic()
    status, headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep(card(backlog)))
    took = time.monotonic() - started
    assert status == 202
    assert took >= deadline_ms / 1000, f"{took:.2f} s: answered 202 without waiting"
    await drained_sent_once(simrs, bpjs_sim, backlog, headers["X-Tenang-Request-Id"])
    _, lane, _ = parts(simrs.tenang)
    await wait_until(lambda: lane.free_slots == SLOTS and not lane.slots.live_waiting,
                     what="every slot back")


async def _all_succeeded(simrs: Caller, n: int) -> bool:
    return await succeeded(simrs) == n


async def drained_sent_once(simrs: Caller, sim: RunningSimulator, backlog: int,
                            request_id: str) -> None:
    """The backlog and the SEP insert after it (``request_id``, the card numbered
    ``backlog``) all delivered, that insert sent to BPJS exactly once, and BPJS never
    saw more than ``SLOTS`` at once."""
    await wait_until(lambda: _all_succeeded(simrs, backlog + 1), timeout_s=30,
                     what="the backlog and the insert after it to be delivered")
    request = await simrs.status_of(request_id)
    assert (request["status"], request["attempt_count"]) == ("succeeded", 1)
    assert await sent_for(sim, card(backlog)) == 1
    assert (await sim.snapshot())["concurrency"]["most"] <= SLOTS


async def test_a_live_attempt_leaving_its_wait_for_a_slot_leaves_nothing_behind(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    """Cancelled while it waits (the SIMRS's request cancelled), out of budget, or handed
    a slot it then does not use: every slot comes back to the lane, and no waiter is
    left for the lane to defer to."""
    cfg = bpjs_config(tmp_path, bpjs_sim, "vclaim", rate={"max_concurrency": SLOTS})
    tenang = await start_tenang(cfg, relay_enabled=False)
    relay, lane, breaker = parts(tenang)
    now = lane.clock()
    busy = await lane.slots.take(SLOTS, now, now + lane.lease_s)  # two sends out
    assert len(busy) == SLOTS

    async def waits(budget_s: float, entered: list[bool]) -> None:
        async with relay.live("vclaim", budget_s) as live:
            entered.append(live.permitted)

    cancelled: list[bool] = []
    task = asyncio.create_task(waits(60.0, cancelled))
    await wait_until(lambda: lane.slots.live_waiting, what="the attempt to wait for a slot")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled == [] and not lane.slots.live_waiting and not breaker.probing
    await lane.release([busy.pop()])
    assert lane.free_slots == 1, "a slot given back after the waiter left is free"

    now = lane.clock()
    busy += await lane.slots.take(1, now, now + lane.lease_s)
    out_of_budget: list[bool] = []
    started = time.monotonic()
    await waits(0.2, out_of_budget)
    assert out_of_budget == [False] and time.monotonic() - started >= 0.2
    assert not lane.slots.live_waiting

    handed: list[bool] = []
    task = asyncio.create_task(waits(60.0, handed))
    await wait_until(lambda: lane.slots.live_waiting, what="the attempt to wait for a slot")
    await lane.release([busy.pop()])  # the next slot back goes to the waiting attempt
    await task
    assert handed == [True], "handed the slot freed"
    await lane.release(busy)
    assert lane.free_slots == SLOTS and not lane.slots.live_waiting and not breaker.probing
