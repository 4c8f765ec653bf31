"""One hash chain for every instance on a PostgreSQL database: two backends (two pools)
storing, claiming, completing and auditing at once append to one sequence, with no gap,
no fork and nothing lost, and it verifies; each intake batch is one transaction whose
entries are its requests'."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest

from proxy.config import StoreConfig
from proxy.lifecycle import Status, Transition, Verdict
from proxy.ops.audit_chain import verify_chain
from proxy.store.backend import Backend
from proxy.store.chain import Kind
from proxy.store.postgres.backend import postgres_backend
from proxy.store.records import AttemptRecord
from tests.store.test_contract import T0, UP, req
from tests.store_support import enqueue

PER_INSTANCE = 150


@pytest.fixture
async def two(pg_config: StoreConfig) -> AsyncIterator[tuple[Backend, Backend]]:
    made: list[Backend] = []
    try:
        for _ in range(2):
            backend = postgres_backend(pg_config)
            await backend.open()
            made.append(backend)
        yield made[0], made[1]
    finally:
        for backend in made:
            await backend.close()


async def work(store: Backend, owner: str, offset: int) -> int:
    """Store PER_INSTANCE requests at once, then claim, deliver and audit what it gets;
    how many requests it completed."""
    requests = [req(offset + i / 1000) for i in range(PER_INSTANCE)]
    await asyncio.gather(*(enqueue(store.intake, r) for r in requests))
    done = 0
    while claimed := await store.queue.claim_due(UP, T0 + 10_000, 20, owner, T0 + 20_000):
        for r in claimed:
            await store.queue.complete_attempt(
                r.id, owner, AttemptRecord(1, T0 + 1, 0.1, Verdict.SUCCESS, 200, None, b"ok"),
                Transition(Status.SUCCEEDED, "delivered"), T0 + 2)
            done += 1
        await store.audit.audit(owner, "batch", None, str(len(claimed)), T0 + 3)
    return done


async def test_two_instances_append_to_one_chain_without_gaps_or_forks(
        two: tuple[Backend, Backend], pg_conn: asyncpg.Connection) -> None:
    a, b = two
    done = await asyncio.gather(work(a, "tenang-a", 0), work(b, "tenang-b", 1))

    assert sum(done) == 2 * PER_INSTANCE  # each request claimed by one instance only
    rows = await pg_conn.fetch("SELECT seq, kind FROM chain ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    kinds = Counter(Kind(r["kind"]) for r in rows)
    # One entry per request and attempt, two states each (claimed, succeeded), and the
    # audit entries: nothing lost to a race, nothing twice.
    assert (kinds[Kind.REQUEST], kinds[Kind.ATTEMPT], kinds[Kind.STATE]) == (
        2 * PER_INSTANCE, 2 * PER_INSTANCE, 4 * PER_INSTANCE)
    assert kinds[Kind.AUDIT] == await pg_conn.fetchval("SELECT count(*) FROM audit_log")
    head = await a.chain.chain_head()
    assert head == await b.chain.chain_head() and head.seq == len(rows)
    result = await verify_chain(b.chain, T0 + 5)
    assert (result.ok, result.checked) == (True, len(rows)), result


async def test_intake_appends_each_batch_in_the_transaction_that_stores_it(
        pg_config: StoreConfig, pg_conn: asyncpg.Connection) -> None:
    store = postgres_backend(pg_config)
    await store.open()
    try:
        requests = [req(i / 1000) for i in range(300)]
        await asyncio.gather(*(enqueue(store.intake, r) for r in requests))
    finally:
        await store.close()
    # xmin: the transaction that wrote a row. Each request's chain entry was written by
    # the transaction that stored the request, and those are a few group commits.
    rows = await pg_conn.fetch(
        "SELECT r.xmin::text AS request_tx, c.xmin::text AS chain_tx FROM requests r "
        "JOIN chain c ON c.kind = 'request' AND c.ref = r.id")
    assert len(rows) == 300
    assert all(r["request_tx"] == r["chain_tx"] for r in rows)
    batches = {r["request_tx"] for r in rows}
    assert 1 <= len(batches) < 30, f"{len(batches)} transactions for 300 enqueues"
