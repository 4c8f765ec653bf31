"""Backpressure: the free-disk floor and the queue cap, with a fake disk and clock."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import pytest

from proxy.config import Config
from proxy.intake.backpressure import (
    ROW_OVERHEAD,
    Backpressure,
    storage_cost,
)
from proxy.intake.readiness import readiness
from proxy.lifecycle import Status
from proxy.store.errors import StoreError, StoreUnavailable
from proxy.store.memory import memory_backend
from proxy.store.memory.intake import MemoryIntake
from proxy.store.memory.state import MemoryState
from proxy.store.records import NewRequest
from proxy.store.sqlite.db import WAL_LIMIT, sqlite_free_bytes
from tests.conftest import FakeClock, make_config, wait_until
from tests.store_support import enqueue, memory_with_intake

MiB = 1024 * 1024


def config(tmp_path: Path, **upstream: object) -> Config:
    cfg = make_config(tmp_path, "http://127.0.0.1:9", **upstream)
    return cfg


async def test_below_the_free_disk_floor_intake_is_refused_with_the_reason(
        tmp_path: Path) -> None:
    free = {"bytes": 10 * MiB}
    cfg = config(tmp_path)
    clock = FakeClock(100.0)
    bp = Backpressure(cfg, memory_backend().intake, clock, free_bytes=lambda: free["bytes"])
    reason = await bp.refusal(cfg.upstreams[0])
    assert reason is not None and "disk almost full" in reason and "min_free_mb" in reason
    free["bytes"] = 500 * MiB
    assert await bp.refusal(cfg.upstreams[0]) is not None  # measured at most once a second
    clock.now += 1.0
    assert await bp.refusal(cfg.upstreams[0]) is None


async def test_the_cap_counts_what_the_store_holds_plus_what_was_accepted_since(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=3)
    store, clock = memory_backend(), FakeClock(100.0)
    for n in range(2):
        await enqueue(store.intake, NewRequest(id=f"r{n}", upstream="antrean", method="POST",
                                               path="/antreanrs/x", query="", headers=(), body=b"",
                                               received_at=float(n)))
    bp = Backpressure(cfg, store.intake, clock, free_bytes=lambda: 10_000 * MiB)
    up = cfg.upstreams[0]
    assert await bp.refusal(up) is None
    bp.accepted(up.name)
    reason = await bp.refusal(up)
    assert reason is not None and "max_pending" in reason


class LockedStore(MemoryIntake):
    locked = True

    async def count_queued(self, upstream: str) -> int:
        if self.locked:
            raise StoreUnavailable("database is locked")
        return await super().count_queued(upstream)


async def test_a_queue_that_cannot_be_counted_raises_the_store_error_and_recounts_next(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=1)
    (store, intake), clock = memory_with_intake(LockedStore), FakeClock(100.0)
    bp = Backpressure(cfg, store.intake, clock, free_bytes=lambda: 10_000 * MiB)
    up = cfg.upstreams[0]
    with pytest.raises(StoreError):  # the gateway answers 503 with its reason
        await bp.refusal(up)
    intake.locked = False
    assert await bp.refusal(up) is None  # counted now, not a second later


class SlowCountStore(MemoryIntake):
    """Counting blocks until the test releases it, and every count is recorded."""

    def __init__(self, state: MemoryState) -> None:
        super().__init__(state)
        self.counts = 0
        self.unblock = asyncio.Event()

    async def count_queued(self, upstream: str) -> int:
        self.counts += 1
        await self.unblock.wait()
        return await super().count_queued(upstream)


def new_request(n: int, body: bytes = b"") -> NewRequest:
    return NewRequest(id=f"r{n}", upstream="antrean", method="POST", path="/antreanrs/x",
                      query="", headers=(), body=body, received_at=float(n))


async def test_concurrent_requests_share_one_count_and_recounts_never_make_intake_wait(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=1000)
    (store, intake), clock = memory_with_intake(SlowCountStore), FakeClock(100.0)
    for n in range(5):
        await enqueue(store.intake, new_request(n))
    bp = Backpressure(cfg, store.intake, clock, free_bytes=lambda: 10_000 * MiB)
    up = cfg.upstreams[0]
    waiters = [asyncio.ensure_future(bp.refusal(up)) for _ in range(64)]
    await wait_until(lambda: intake.counts == 1, what="the first count to start")
    intake.unblock.set()
    assert await asyncio.gather(*waiters) == [None] * 64
    assert intake.counts == 1  # 64 requests, one count (it was 64 counts, one by one)

    intake.unblock.clear()  # from now on a count never finishes
    clock.advance(3600.0)
    for _ in range(100):  # answered from the running count, at once
        assert await asyncio.wait_for(bp.refusal(up), 1.0) is None
        bp.accepted(up.name)
    assert intake.counts == 2  # one recount in the background, not one per request
    assert await bp.queued(up.name) == 105
    intake.unblock.set()
    await wait_until(lambda: bp._counts[up.name].task is None, what="the recount")
    # The recount found 5 rows; the 100 accepted during it are credited (errs high).
    assert await bp.queued(up.name) == 105


async def test_requests_that_settle_leave_the_running_count_without_a_recount(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=3)
    store, clock = memory_backend(), FakeClock(100.0)
    for n in range(3):
        await enqueue(store.intake, new_request(n))
    bp = Backpressure(cfg, store.intake, clock, free_bytes=lambda: 10_000 * MiB)
    up = cfg.upstreams[0]
    assert await bp.refusal(up) is not None
    bp.finished(up.name, "r0", Status.HELD, "behind r1")  # still queued
    assert await bp.refusal(up) is not None
    bp.finished(up.name, "r0", Status.SUCCEEDED, "ok")
    assert await bp.refusal(up) is None


async def test_recounts_are_spaced_by_how_long_a_count_takes(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=10)
    clock = FakeClock(100.0)

    class TimedStore(MemoryIntake):
        counts = 0

        async def count_queued(self, upstream: str) -> int:
            self.counts += 1
            clock.advance(0.5)  # a count over a large backlog takes half a second
            return 0

    store, intake = memory_with_intake(TimedStore)
    bp = Backpressure(cfg, store.intake, clock, free_bytes=lambda: 10_000 * MiB)
    up = cfg.upstreams[0]
    await bp.refusal(up)
    clock.advance(5.0)  # past the 1 s refresh, inside 20 x 0.5 s
    await bp.refusal(up)
    assert intake.counts == 1
    clock.advance(5.0)
    await bp.refusal(up)
    await wait_until(lambda: intake.counts == 2, what="a recount")


async def test_a_burst_inside_one_sample_cannot_go_through_the_disk_floor(
        tmp_path: Path) -> None:
    cfg = config(tmp_path)  # min_free_mb = 64
    clock = FakeClock(100.0)
    disk = {"free": 65 * MiB}
    bp = Backpressure(cfg, memory_backend().intake, clock, free_bytes=lambda: disk["free"])
    up = cfg.upstreams[0]
    calls = [new_request(n, b"x" * 100_000) for n in range(100)]
    admitted = [c for c in calls if await bp.refusal(up, c) is None]
    # ~10 MB of bodies against 1 MiB of room: only what fits, at the estimated cost.
    assert admitted
    assert sum(storage_cost(c) for c in admitted) <= 1 * MiB
    assert len(admitted) == MiB // storage_cost(calls[0])
    reason = await bp.refusal(up, calls[-1])
    assert reason is not None and "disk almost full" in reason
    for c in admitted:  # committed: the disk shows them now
        disk["free"] -= storage_cost(c)
        bp.stored(c)
    assert await bp.refusal(up, calls[-1]) is not None  # re-sampled by bytes: still full
    disk["free"] = 500 * MiB  # space returns
    clock.advance(1.0)
    assert await bp.refusal(up, calls[-1]) is None


async def test_free_space_is_sampled_again_after_enough_bytes_not_only_each_second(
        tmp_path: Path) -> None:
    cfg = config(tmp_path)  # min_free_mb = 64
    clock = FakeClock(100.0)  # frozen: all of it inside one second
    disk = {"free": 70 * MiB}
    bp = Backpressure(cfg, memory_backend().intake, clock, free_bytes=lambda: disk["free"])
    up = cfg.upstreams[0]
    call = new_request(1, b"x" * 60_000)
    for _ in range(1000):  # bounded: a floor that never refuses fails, not hangs
        if await bp.refusal(up, call) is not None:
            break
        bp.stored(call)
        disk["free"] -= storage_cost(call) * 2  # the disk fills twice as fast as estimated
    # Sampled once a second only, this ran 6 MiB through the floor (to 58 MiB free);
    # sampled by bytes too, the estimate's error shrinks as the room does.
    assert disk["free"] >= 64 * MiB - MiB


def test_room_for_the_wal_to_grow_is_not_free_for_intake(tmp_path: Path) -> None:
    db = tmp_path / "tenang.db"
    slack = abs(shutil.disk_usage(tmp_path).free - WAL_LIMIT - sqlite_free_bytes(db))
    assert slack < 1024 * 1024  # other writers on this disk meanwhile


async def test_readiness_for_one_upstream_ignores_another_ones_full_queue(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=1)
    other = dataclasses.replace(cfg.upstreams[0], name="vclaim", prefix="/vclaim-rest",
                                max_pending=0)
    cfg = dataclasses.replace(cfg, upstreams=(cfg.upstreams[0], other))
    store = memory_backend()
    await enqueue(store.intake, new_request(1))
    bp = Backpressure(cfg, store.intake, FakeClock(100.0), free_bytes=lambda: 10_000 * MiB)
    ready, doc = await readiness(store.engine, bp)
    assert not ready and "queue for antrean is full" in doc["reason"]
    assert doc["upstreams"]["vclaim"] == {"ready": True, "queued": None, "max_pending": None}
    assert (await readiness(store.engine, bp, only="vclaim"))[0]
    assert not (await readiness(store.engine, bp, only="antrean"))[0]


async def test_the_disk_estimate_counts_requests_still_being_stored_across_a_sample(
        tmp_path: Path) -> None:
    cfg = config(tmp_path)
    clock = FakeClock(100.0)
    bp = Backpressure(cfg, memory_backend().intake, clock, free_bytes=lambda: 65 * MiB)
    up = cfg.upstreams[0]
    call = new_request(1, b"x" * (MiB // 2 - ROW_OVERHEAD))
    assert await bp.refusal(up, call) is None  # admitted, its commit not done yet
    clock.advance(1.0)  # a new sample that cannot show the uncommitted row
    assert await bp.refusal(up, call) is not None
    bp.stored(call)
    clock.advance(1.0)
    assert await bp.refusal(up, call) is None
