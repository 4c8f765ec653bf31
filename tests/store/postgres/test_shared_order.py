"""Order across instances is intake order (the store-side sequence), never the ids':
instances mint ids from their own clocks. A bed update stored last supersedes those
stored before it even when another instance's clock, running ahead, gave an earlier one
a larger id: the stale update is cancelled, not sent after the newer one."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from proxy.app import build_breakers
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import StoreConfig
from proxy.delivery.attempt import Deliverer
from proxy.ids import new_request_id
from proxy.lifecycle import SUPERSEDED, Status
from proxy.store.backend import Backend
from proxy.store.postgres.backend import postgres_backend
from tests.conftest import FakeClock, make_config
from tests.store_support import bed_update, enqueue

T0 = 1_800_000_000.0


@pytest.fixture
async def store(pg_config: StoreConfig) -> AsyncIterator[Backend]:
    backend = postgres_backend(pg_config)
    await backend.open()
    yield backend
    await backend.close()


async def test_the_update_stored_last_supersedes_whatever_the_ids_say(
        tmp_path: Path, store: Backend, bpjs_sim: RunningSimulator) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, name="aplicare", prefix="/aplicare",
                      target=bpjs_sim.url + "/aplicaresws", preset="aplicare")
    # Stored in this order; the second came through an instance whose clock is ahead.
    minted_at = (T0 + 1, T0 + 10, T0 + 2)
    ids = [new_request_id(t) for t in minted_at]
    assert ids[1] > ids[2]
    for n, rid in enumerate(ids):
        await enqueue(store.intake, bed_update(rid, T0 + n, n))
    [first] = await store.queue.claim_due("aplicare", T0 + 5, 1, "w", T0 + 60)
    assert first.id == ids[0]
    breaker = build_breakers(cfg)["aplicare"]
    permit = breaker.try_acquire()
    assert permit is not None
    async with aiohttp.ClientSession() as session:
        deliverer = Deliverer(cfg.upstreams[0], store.queue, session, breaker, "w",
                              FakeClock(T0 + 5), random.Random(1))
        await deliverer.deliver(first, permit)

    assert bpjs_sim.state.log == [], "a superseded update was sent"
    for rid in ids[:2]:
        row = await store.log.get(rid)
        assert row is not None and row.status is Status.CANCELLED, rid
        assert row.reason == f"{SUPERSEDED}{ids[2]}"
    newest = await store.log.get(ids[2])
    assert newest is not None and newest.status is Status.PENDING
