"""Live attempts (deadline mode) give back what they hold on every way they end.

A SEP insert sent live while the SIMRS waits holds one of its lane's slots and a permit
of the upstream's breaker (while half-open, its only probe). Both must come back
whether BPJS answered in time, after the deadline, with an error or not at all,
whether the SIMRS waited, went away or its request was cancelled, and at shutdown:
a lost slot narrows the lane for good, a lost probe stops every send to BPJS. Over real
HTTP to the BPJS simulator; later live sends must still go out."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.delivery.live import NOT_RECORDED, LiveAttempt
from proxy.delivery.relay import Lane, Relay
from proxy.ids import next_request_id
from proxy.lifecycle import Status
from proxy.policies.breaker import AsyncBreaker, BreakerState
from proxy.store.records import NewRequest
from tests.bpjs_support import bpjs_config
from tests.conftest import FakeClock, wait_until
from tests.integration.test_modes import SEP_INSERT, Caller, t_sep
from tests.store_support import enqueue

SLOTS = 4  # the lane's rate.max_concurrency in these tests
# The SIMRS waits DEADLINE_MS for a live answer: long enough that BPJS answering at once
# is answered live on a loaded machine too (300 ms was not: one run in 8 at load 15 got a
# 202). LATE_MS is an answer after the deadline, within TIMEOUT_S.
DEADLINE_MS = 1500
LATE_MS = 2000
TIMEOUT_S = 3.0


def card(n: int) -> str:
    return f"{9000000000000 + n:013d}"  # a card of its own: a second SEP would be refused


async def live_vclaim(tmp_path: Path, sim: RunningSimulator, start_tenang: Any,
                      http: aiohttp.ClientSession, *, relay_enabled: bool = True,
                      clock: FakeClock | None = None, **extra: Any) -> Caller:
    """Tenang for VClaim with a DEADLINE_MS SEP insert deadline. ``relay_enabled=False``: no
    lane runs, so every permit the breaker grants goes to a live attempt, which still
    goes out (it runs as a task of its lane, not in the lane's loop). ``clock``: Tenang's
    own, moved by the test."""
    cfg = bpjs_config(tmp_path, sim, "vclaim", timeout_s=TIMEOUT_S, rate={"max_concurrency": SLOTS},
                      routes=[{"match": "POST SEP/{v}/insert", "deadline_ms": DEADLINE_MS}],
                      **extra)
    timed = {} if clock is None else {"clock": clock}
    return Caller(http, sim, await start_tenang(cfg, relay_enabled=relay_enabled, **timed),
                  "vclaim")


def parts(tenang: Tenang) -> tuple[Relay, Lane, AsyncBreaker]:
    assert tenang.relay is not None
    return tenang.relay, tenang.relay.lanes["vclaim"], tenang.breakers["vclaim"]


def gave_everything_back(lane: Lane, breaker: AsyncBreaker) -> bool:
    return lane.free_slots == SLOTS and not lane.ours() and not breaker.probing


async def insert_gone_early(simrs: Caller, body: Any) -> None:
    """A SIMRS that stops waiting after 0.1 s and closes its connection."""
    headers = simrs.sim.signed_headers("vclaim", method="POST")
    with pytest.raises(TimeoutError):
        async with simrs.http.post(simrs.tenang.gateway_url + SEP_INSERT,
                                   data=json.dumps(body), headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=0.1)):
            pass


async def answered_live(simrs: Caller, n: int) -> None:
    status, _, doc, _ = await simrs.call("POST", SEP_INSERT, t_sep(card(n)))
    assert (status, doc["metaData"]["code"]) == (200, "200"), doc


# What BPJS does with one live insert (a one-shot simulator fault) and whether the SIMRS
# waits for Tenang's answer.
WAYS = [
    ("answered in time", None, True),
    ("answered after the deadline", ("delay-then-answer", LATE_MS), True),
    ("SIMRS gone before any answer", ("delay-then-answer", LATE_MS), False),
    ("HTML error page", ("html-500", 0), True),
    ("connection lost after applying", ("reset-after-apply", 0), True),
    ("connection lost before applying", ("reset-before-apply", 0), True),
    ("no answer within timeout_s", ("timeout", 0), True),
]


async def test_many_live_inserts_ending_every_way_give_back_every_slot_and_permit(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await live_vclaim(tmp_path, bpjs_sim, start_tenang, http,
                              breaker={"fail_max": 1000})
    _, lane, breaker = parts(simrs.tenang)
    n = 0
    for _ in range(2):
        for way, fault, waits in WAYS:
            n += 1
            # Each way meets a free slot, as its name says (a send of the way before
            # may outlast the SIMRS's wait; with no slot free the insert would be queued
            # at once, and the SIMRS "gone early" would hear its 202 first).
            await wait_until(lambda: gave_everything_back(lane, breaker),
                             what=f"the slots and permit back before {way!r}")
            if fault is not None:
                await bpjs_sim.fault("SEP/2.0/insert", fault[0], delay_ms=fault[1])
            if waits:
                status, _, _, _ = await simrs.call("POST", SEP_INSERT, t_sep(card(n)))
                assert status in (200, 202)
            else:
                await insert_gone_early(simrs, t_sep(card(n)))
    # A burst past the lane's slots, some slow: with every slot busy a live insert is
    # not refused but stored for the relay (202), and each send gives its slot back.
    await bpjs_sim.fault("SEP/2.0/insert", "delay-then-answer", delay_ms=LATE_MS, times=4)
    burst = await asyncio.gather(*(simrs.call("POST", SEP_INSERT, t_sep(card(n + i)))
                                   for i in range(1, 3 * SLOTS + 1)))
    assert {answer[0] for answer in burst} <= {200, 202}
    n += 3 * SLOTS

    async def all_succeeded() -> bool:
        counts = (await simrs.tenang.backend.log.summary())["vclaim"].counts
        return dict(counts) == {Status.SUCCEEDED: n}

    await wait_until(all_succeeded, timeout_s=30, what=f"all {n} inserts to succeed")
    await wait_until(lambda: gave_everything_back(lane, breaker),
                     what="the lane's slots and the breaker's probe to come back")
    assert breaker.state is BreakerState.CLOSED
    assert len((await bpjs_sim.snapshot())["seps"]) == n  # each made exactly once
    await answered_live(simrs, n + 1)  # and the next one still goes out live


async def test_the_half_open_probe_taken_live_comes_back_however_the_attempt_ends(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await live_vclaim(tmp_path, bpjs_sim, start_tenang, http, relay_enabled=False)
    _, lane, breaker = parts(simrs.tenang)
    first, once = t_sep(card(0)), {"Idempotency-Key": "sep-0"}
    assert (await simrs.call("POST", SEP_INSERT, first, extra=once))[0] == 200
    for n, (way, fault, waits) in enumerate([*WAYS, ("a resubmission", None, True)], 1):
        breaker.force_open()
        breaker.release()  # half-open: the next live insert carries the one probe
        again = way == "a resubmission"  # answered from the store: nothing is sent
        body = first if again else t_sep(card(n))
        if fault is not None:
            await bpjs_sim.fault("SEP/2.0/insert", fault[0], delay_ms=fault[1])
        if waits:
            await simrs.call("POST", SEP_INSERT, body, extra=once if again else None)
        else:
            await insert_gone_early(simrs, body)
        await wait_until(lambda: gave_everything_back(lane, breaker),
                         what=f"the probe to come back ({way})")
        # Settled by the send's result, not dropped: a success closes the breaker, a
        # failure opens it again; nothing sent leaves it half-open for the next probe.
        assert (breaker.state is BreakerState.HALF_OPEN) == again, way
    breaker.force_open()
    breaker.release()
    await answered_live(simrs, 100)
    assert breaker.state is BreakerState.CLOSED


# --- the attempt itself: cancelled before and after it starts, cut short at shutdown ----


def sep_call(sim: RunningSimulator, n: int,
             now: float | None = None) -> tuple[NewRequest, CIMultiDict[str]]:
    """A SEP insert as intake stores it (received ``now``), and the SIMRS's own signed
    headers."""
    now = time.time() if now is None else now
    body = json.dumps(t_sep(card(n))).encode()
    call = NewRequest(id=next_request_id(now), upstream="vclaim", method="POST",
                      path=SEP_INSERT, query="", headers=(("Content-Type", "application/json"),),
                      body=body, received_at=now, endpoint="vclaim.sep.insert")
    headers = CIMultiDict(sim.signed_headers("vclaim", method="POST"))
    headers["Content-Type"] = "application/json"
    return call, headers


async def started(relay: Relay, tenang: Tenang, sim: RunningSimulator, n: int,
                  box: list[LiveAttempt]) -> None:
    """What the gateway does with a live attempt, waiting as long as it takes."""
    call, headers = sep_call(sim, n)
    async with relay.live("vclaim") as live:
        box.append(live)
        call = live.lease(call)
        await enqueue(tenang.backend.intake, call)
        live.start(call.as_stored(), headers)
        await live.result(60.0)


async def test_a_live_attempt_cancelled_before_it_is_sent_hands_the_probe_back(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await live_vclaim(tmp_path, bpjs_sim, start_tenang, http, relay_enabled=False)
    relay, lane, breaker = parts(simrs.tenang)
    breaker.force_open()
    breaker.release()
    entered, hold = asyncio.Event(), asyncio.Event()
    held: list[bool] = []

    async def cancelled_while_storing() -> None:
        async with relay.live("vclaim") as live:
            held.append(live.permitted and breaker.probing)
            entered.set()
            await hold.wait()  # the SIMRS's request is cancelled here (store, backpressure)

    task = asyncio.create_task(cancelled_while_storing())
    await entered.wait()
    assert held == [True]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gave_everything_back(lane, breaker)
    assert await bpjs_sim.log("SEP/2.0/insert") == []
    await answered_live(simrs, 1)  # the probe was free for the next live insert


async def test_a_live_attempt_whose_simrs_is_cancelled_mid_wait_is_still_sent_and_settled(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await live_vclaim(tmp_path, bpjs_sim, start_tenang, http, relay_enabled=False)
    relay, lane, breaker = parts(simrs.tenang)
    breaker.force_open()
    breaker.release()
    await bpjs_sim.fault("SEP/2.0/insert", "delay-then-answer", delay_ms=500)
    box: list[LiveAttempt] = []
    task = asyncio.create_task(started(relay, simrs.tenang, bpjs_sim, 1, box))
    await wait_until(lambda: bool(lane.delivering), what="the live send to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [live] = box
    assert live.answer is not None
    result = await live.answer  # the send went on without the SIMRS, and was recorded
    assert result.status is Status.SUCCEEDED
    await wait_until(lambda: gave_everything_back(lane, breaker),
                     what="the slot and the probe to come back")
    assert breaker.state is BreakerState.CLOSED
    assert len(await bpjs_sim.log("SEP/2.0/insert")) == 1
    await answered_live(simrs, 2)


async def test_a_live_attempt_cut_short_at_shutdown_hands_the_probe_back(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await live_vclaim(tmp_path, bpjs_sim, start_tenang, http, relay_enabled=False,
                              relay={"shutdown_grace_s": 0.1})
    relay, lane, breaker = parts(simrs.tenang)
    breaker.force_open()
    breaker.release()
    await bpjs_sim.fault("SEP/2.0/insert", "delay-then-answer", delay_ms=1000)
    box: list[LiveAttempt] = []
    waiting = asyncio.create_task(started(relay, simrs.tenang, bpjs_sim, 1, box))
    async def reached_bpjs() -> bool:
        return bool(await bpjs_sim.log("SEP/2.0/insert"))

    await wait_until(reached_bpjs, what="the send to reach BPJS")
    await relay.stop()  # past the grace period: the send is cut short
    await waiting  # the SIMRS hears "not recorded" (it answers queued), not a hang
    [live] = box
    assert live.answer is not None and live.answer.result() == NOT_RECORDED
    assert gave_everything_back(lane, breaker)


async def test_a_live_attempt_stored_after_its_lease_ran_out_is_sent_once_and_answered(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    """Intake stores a live request leased from its receipt; on a loaded machine the
    commit may end after the lease did. The lane's take-over, running before the send
    starts, must not take that row for a dead delivery: recorded as interrupted, it was
    sent live anyway, the live answer was refused as 'lease lost' (the SIMRS got a 202,
    not BPJS's answer) and the request was claimed again for a second round trip."""
    clock = FakeClock(time.time())
    simrs = await live_vclaim(tmp_path, bpjs_sim, start_tenang, http, relay_enabled=False,
                              clock=clock)
    relay, lane, breaker = parts(simrs.tenang)
    call, headers = sep_call(bpjs_sim, 1, now=clock())
    async with relay.live("vclaim") as live:
        call = live.lease(call)
        await enqueue(simrs.tenang.backend.intake, call)
        clock.advance(lane.lease_s + 1)  # the commit outlasted the lease
        await lane.step()  # the lane's housekeeping runs before the send starts
        live.start(call.as_stored(), headers)
        result = await live.result(30.0)
    assert result is not None and result.status is Status.SUCCEEDED
    assert result.reply is not None and result.reply.status == 200
    attempts = await simrs.tenang.backend.log.attempts(call.id)
    assert [a.verdict.value for a in attempts] == ["success"]
    clock.advance(3600)  # whatever a take-over would have scheduled is due now
    assert await lane.step() == 0
    await wait_until(lambda: gave_everything_back(lane, breaker),
                     what="the slot and the probe to come back")
    assert len(await bpjs_sim.log("SEP/2.0/insert")) == 1
    assert await bpjs_sim.log("HistoriPelayanan") == []
