"""A send that outlives its lease is never taken over by another instance.

A lease lasts ``timeout_s + relay.lease_margin_s``, but an attempt may last about twice
``timeout_s`` (a send that times out, then a reconciliation read). Its lane renews the
lease while the attempt goes on; if it did not, another instance on the same store
would take the row for a dead delivery, record it as interrupted and send it again
while the first is still working on it (a second SEP). The lane's renewal used to ride
on its claim loop's housekeeping, so a lane asleep while all its send slots were busy
(until ``poll_interval_s``, the breaker's next probe, the rate's next token) renewed
nothing, nor did one stopping, during the shutdown grace period.

Tenang here has its own fake clock (leases are judged on it); the SEP insert is held at
the real BPJS simulator, over real HTTP, while the test moves the clock past the lease.
"Another instance" is the store's own take-over and claim, as every lane runs them, on
the same SQLite file or PostgreSQL schema, under an owner of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import StoreConfig
from proxy.delivery.relay import Lane
from proxy.lifecycle import Status
from proxy.store.backend import Backend
from proxy.store.postgres.backend import postgres_backend
from tests.bpjs_support import bpjs_config
from tests.conftest import FakeClock, StartTenang, wait_until
from tests.integration.test_live_attempts import card
from tests.integration.test_modes import SEP_INSERT, Caller, t_sep
from tests.pg_support import fresh_schema

TIMEOUT_S = 4.0  # the upstream's timeout: with no margin, a lease of 4 s (fake time)
HOLD_MS = 3000  # how long BPJS holds the insert (real time), within TIMEOUT_S
# How long the lane may take to renew (real time): a third of a lease, and some slack.
RENEWED_WITHIN_S = 2.5
OTHER = "other-instance:1:0"  # the lease owner of the instance that must not take over


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend | None]:
    """The store both instances share: Tenang's SQLite file (None) or a PostgreSQL
    schema (instances there share the send slots too)."""
    if request.param == "sqlite":
        yield None
        return
    async with fresh_schema() as url:
        yield postgres_backend(StoreConfig(url=url, pool_min=1, pool_max=4))


async def held_insert(tmp_path: Path, sim: RunningSimulator, start_tenang: StartTenang,
                      http: aiohttp.ClientSession, backend: Backend | None, clock: FakeClock,
                      **relay: Any) -> tuple[Tenang, str]:
    """Tenang with one send slot, queueing SEP inserts; one insert sent and held by BPJS
    for HOLD_MS. Its id, once the send is out."""
    cfg = bpjs_config(tmp_path, sim, "vclaim", timeout_s=TIMEOUT_S,
                      rate={"max_concurrency": 1},
                      routes=[{"match": "POST SEP/{v}/insert", "mode": "queue"}],
                      relay={"lease_margin_s": 0.0, **relay})
    tenang = await start_tenang(cfg, backend=backend, clock=clock)
    await sim.fault("SEP/2.0/insert", "delay-then-answer", delay_ms=HOLD_MS)
    status, _, _, _ = await Caller(http, sim, tenang, "vclaim").call(
        "POST", SEP_INSERT, t_sep(card(1)))
    assert status == 202
    lane = lane_of(tenang)
    await wait_until(lambda: bool(lane.delivering), what="the insert to be sent")
    [request_id] = lane.delivering
    return tenang, request_id


def lane_of(tenang: Tenang) -> Lane:
    assert tenang.relay is not None
    return tenang.relay.lanes["vclaim"]


async def leased_past(tenang: Tenang, request_id: str, clock: FakeClock) -> bool:
    """The row is still leased to ``tenang`` beyond the clock's now (renewed, and its
    send slot with it: the lane renews the slots first)."""
    row = await tenang.backend.log.get(request_id)
    assert row is not None
    return (row.status is Status.IN_FLIGHT and row.lease_owner == tenang.owner
            and row.lease_expires_at is not None and row.lease_expires_at > clock())


async def another_instance_takes_nothing(tenang: Tenang, request_id: str,
                                         clock: FakeClock) -> None:
    """What another instance's lane does at ``clock()``: its take-over of expired leases
    and its claim find nothing, and on a shared store no send slot is free."""
    now, store = clock(), tenang.backend.queue
    lease_s = lane_of(tenang).lease_s
    assert await store.take_over_expired("vclaim", now, OTHER, now + lease_s) == []
    assert await store.claim_due("vclaim", now, 10, OTHER, now + lease_s) == []
    slots = tenang.backend.send_slots
    if slots.shared:
        assert await slots.take_send_slots("vclaim", OTHER, 1, 1, now, now + lease_s) == []
    assert request_id in lane_of(tenang).delivering, "the send ended before the check"


async def sent_once_and_succeeded(tenang: Tenang, sim: RunningSimulator,
                                  request_id: str) -> None:
    async def settled() -> bool:
        row = await tenang.backend.log.get(request_id)
        return row is not None and row.status is Status.SUCCEEDED

    await wait_until(settled, timeout_s=2 * TIMEOUT_S, what="the insert to succeed")
    attempts = await tenang.backend.log.attempts(request_id)
    assert [a.verdict.value for a in attempts] == ["success"]
    assert len(await sim.log("SEP/2.0/insert")) == 1
    assert len((await sim.snapshot())["seps"]) == 1
    assert await sim.log("HistoriPelayanan") == []  # nothing to reconcile either


# ``backend`` first: set up before Tenang, so its schema is dropped after Tenang stops.
async def test_a_send_outliving_its_lease_while_every_slot_is_busy_stays_ours(
        backend: Backend | None, tmp_path: Path, bpjs_sim: RunningSimulator,
        start_tenang: StartTenang, http: aiohttp.ClientSession) -> None:
    clock = FakeClock(time.time())
    # Its one slot busy, the lane waits poll_interval_s before it looks again: far
    # longer than the lease (it is woken when the send ends).
    tenang, request_id = await held_insert(tmp_path, bpjs_sim, start_tenang, http,
                                           backend, clock, poll_interval_s=60.0)
    lane = lane_of(tenang)
    assert lane.free_slots == 0
    clock.advance(lane.lease_s + 1)  # the send is out past the lease it was claimed with
    await wait_until(lambda: leased_past(tenang, request_id, clock),
                     timeout_s=RENEWED_WITHIN_S, what="the lease to be renewed")
    await another_instance_takes_nothing(tenang, request_id, clock)
    await sent_once_and_succeeded(tenang, bpjs_sim, request_id)


async def test_a_send_draining_at_shutdown_past_its_lease_stays_ours(
        backend: Backend | None, tmp_path: Path, bpjs_sim: RunningSimulator,
        start_tenang: StartTenang, http: aiohttp.ClientSession) -> None:
    clock = FakeClock(time.time())
    # A grace period longer than the lease: the send is let finish, and stays ours.
    tenang, request_id = await held_insert(tmp_path, bpjs_sim, start_tenang, http,
                                           backend, clock, shutdown_grace_s=2 * TIMEOUT_S)
    relay, lane = tenang.relay, lane_of(tenang)
    assert relay is not None
    [claiming] = [t for t in asyncio.all_tasks() if t.get_name() == "relay-lane-vclaim"]
    stopping = asyncio.create_task(relay.stop())
    # Its claim loop (and the housekeeping in it) has ended; the send goes on.
    await wait_until(claiming.done, what="the lane to stop claiming")
    clock.advance(lane.lease_s + 1)
    await wait_until(lambda: leased_past(tenang, request_id, clock),
                     timeout_s=RENEWED_WITHIN_S, what="the lease to be renewed while draining")
    await another_instance_takes_nothing(tenang, request_id, clock)
    await stopping
    await sent_once_and_succeeded(tenang, bpjs_sim, request_id)
    assert lane.slots.held == 0
