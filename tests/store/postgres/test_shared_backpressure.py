"""Backpressure with two instances on one PostgreSQL queue: `max_pending` is a cap on the
queue all instances share, not on what each one accepted itself. Each instance reads
the count from the store at most SHARED_REFRESH_S old (fake clocks step past it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from proxy.config import Config, StoreConfig
from proxy.ids import new_request_id
from proxy.intake.backpressure import SHARED_REFRESH_S, Backpressure
from proxy.store.postgres.database import Database
from proxy.store.postgres.intake import PostgresIntake
from proxy.store.records import NewRequest
from tests.conftest import FakeClock, make_config, wait_until

CAP = 10


def shared_config(tmp_path: Path, store: StoreConfig) -> Config:
    cfg = make_config(tmp_path, "http://127.0.0.1:9", max_pending=CAP)
    return dataclasses.replace(cfg, store=store)


class Instance:
    """One Tenang's intake side: its own pool, its own backpressure, its own clock."""

    def __init__(self, cfg: Config, db: Database, clock: FakeClock) -> None:
        self.intake = PostgresIntake(db)
        self.clock = clock
        self.backpressure = Backpressure(cfg, self.intake, clock, free_bytes=lambda: 0)
        self.upstream = cfg.upstreams[0]

    async def submit(self) -> bool:
        """What the gateway does with one request: ask, then store; True if accepted."""
        if await self.backpressure.refusal(self.upstream) is not None:
            return False
        now = self.clock()
        request = NewRequest(id=new_request_id(now), upstream=self.upstream.name,
                             method="POST", path="/antreanrs/antrean/add", query="",
                             headers=(), body=b"{}", received_at=now)
        assert await self.intake.enqueue_or_match(request, 60, now) is None
        self.backpressure.accepted(self.upstream.name)
        return True


async def test_two_instances_refuse_past_the_global_cap(
        tmp_path: Path, pg_config: StoreConfig, dbs: tuple[Database, Database]) -> None:
    cfg = shared_config(tmp_path, pg_config)
    clock = FakeClock(1_000.0)
    a, b = Instance(cfg, dbs[0], clock), Instance(cfg, dbs[1], clock)

    # A fills 6 of the 10 places; B, counting after the refresh interval, sees them.
    assert [await a.submit() for _ in range(6)] == [True] * 6
    clock.now += SHARED_REFRESH_S
    assert [await b.submit() for _ in range(5)] == [True] * 4 + [False]
    # A learns of B's 4 at its next read of the store, and refuses too.
    clock.now += SHARED_REFRESH_S

    async def a_counted_all() -> bool:  # the read runs in the background
        return await a.backpressure.queued(a.upstream.name) == CAP

    await wait_until(a_counted_all, what="A's recount")
    assert await a.submit() is False
    assert await a.intake.count_queued(a.upstream.name) == CAP
    for instance in (a, b):
        await instance.backpressure.close()


def test_a_shared_store_keeps_no_disk_floor_on_this_host(
        tmp_path: Path, pg_config: StoreConfig) -> None:
    """The database server's disk is out of this host's sight (it answers "disk full"
    itself): readiness reports no floor rather than a made-up free space."""
    bp = Backpressure(shared_config(tmp_path, pg_config), PostgresIntake(Database(pg_config)),
                      FakeClock(0.0), free_bytes=lambda: 0)
    assert bp.disk.readiness().min_free_bytes == 0
