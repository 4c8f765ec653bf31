"""Backpressure: the free-disk floor and the queue cap, with a fake disk and clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.backpressure import Backpressure
from proxy.config import Config
from proxy.store.base import NewRequest, StoreError, StoreUnavailable
from proxy.store.memory import MemoryStore
from tests.conftest import FakeClock, make_config

MiB = 1024 * 1024


def config(tmp_path: Path, **upstream: object) -> Config:
    cfg = make_config(tmp_path, "http://127.0.0.1:9", **upstream)
    return cfg


async def test_below_the_free_disk_floor_intake_is_refused_with_the_reason(
        tmp_path: Path) -> None:
    free = {"bytes": 10 * MiB}
    cfg = config(tmp_path)
    clock = FakeClock(100.0)
    bp = Backpressure(cfg, MemoryStore(), clock, free_bytes=lambda _p: free["bytes"])
    reason = await bp.refusal(cfg.upstreams[0])
    assert reason is not None and "disk almost full" in reason and "min_free_mb" in reason
    free["bytes"] = 500 * MiB
    assert await bp.refusal(cfg.upstreams[0]) is not None  # measured at most once a second
    clock.now += 1.0
    assert await bp.refusal(cfg.upstreams[0]) is None


async def test_the_cap_counts_what_the_store_holds_plus_what_was_accepted_since(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=3)
    store, clock = MemoryStore(), FakeClock(100.0)
    for n in range(2):
        await store.enqueue(NewRequest(id=f"r{n}", upstream="antrean", method="POST",
                                       path="/antreanrs/x", query="", headers=(), body=b"",
                                       received_at=float(n)))
    bp = Backpressure(cfg, store, clock, free_bytes=lambda _p: 10_000 * MiB)
    up = cfg.upstreams[0]
    assert await bp.refusal(up) is None
    bp.accepted(up.name)
    reason = await bp.refusal(up)
    assert reason is not None and "max_pending" in reason


class LockedStore(MemoryStore):
    locked = True

    async def count_queued(self, upstream: str) -> int:
        if self.locked:
            raise StoreUnavailable("database is locked")
        return await super().count_queued(upstream)


async def test_a_queue_that_cannot_be_counted_raises_the_store_error_and_recounts_next(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pending=1)
    store, clock = LockedStore(), FakeClock(100.0)
    bp = Backpressure(cfg, store, clock, free_bytes=lambda _p: 10_000 * MiB)
    up = cfg.upstreams[0]
    with pytest.raises(StoreError):  # the gateway answers 503 with its reason
        await bp.refusal(up)
    store.locked = False
    assert await bp.refusal(up) is None  # counted now, not a second later
