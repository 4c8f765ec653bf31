"""Intake on PostgreSQL commits in groups: requests arriving together share one insert
statement (one commit), their intake order is their arrival order, a row that cannot be
stored fails alone (found by halving the batch) while a full disk fails the batch at
once, and resubmissions of one key racing from two instances store one; the hash chain
holds an entry for each request stored, and none for the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from proxy.config import StoreConfig
from proxy.ids import new_request_id
from proxy.store.errors import StoreError, StoreFull
from proxy.store.postgres.database import Database
from proxy.store.postgres.intake import PostgresIntake
from proxy.store.records import NewRequest

T0 = 1_700_000_000.0


def request(n: int, **fields: object) -> NewRequest:
    values: dict[str, object] = {
        "id": new_request_id(T0 + n), "upstream": "antrean", "method": "POST",
        "path": f"/antreanrs/antrean/add/{n}", "query": "", "headers": (), "body": b"{}",
        "received_at": T0 + n}
    values.update(fields)
    return NewRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
async def db(pg_config: StoreConfig) -> AsyncIterator[Database]:
    database = Database(pg_config)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


async def test_requests_arriving_together_share_a_commit(db: Database) -> None:
    intake = PostgresIntake(db)
    batch = [request(n) for n in range(300)]

    assert await asyncio.gather(*(intake.enqueue_or_match(r, 60, T0) for r in batch)) == (
        [None] * 300)

    async with db.pool.acquire() as conn:
        commits = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM requests")
        stored = [r["id"] for r in await conn.fetch("SELECT id FROM requests ORDER BY seq")]
    assert commits <= 3  # the first request alone, then the rest in a batch or two
    assert stored == [r.id for r in batch]  # intake order is arrival order


async def test_a_row_that_cannot_be_stored_fails_alone(db: Database) -> None:
    intake = PostgresIntake(db)
    taken = request(0)
    await intake.enqueue_or_match(taken, 60, T0)

    results = await asyncio.gather(
        *(intake.enqueue_or_match(r, 60, T0) for r in (request(1), taken, request(2))),
        return_exceptions=True)

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError)
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM requests") == 3
        # The failed row took no chain entry with it; its neighbours have theirs.
        refs = [r["ref"] for r in await conn.fetch("SELECT ref FROM chain ORDER BY seq")]
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM requests ORDER BY seq")]
    assert refs == ids and len(refs) == 3


async def test_one_bad_row_in_a_big_batch_is_found_in_a_few_statements(db: Database) -> None:
    intake = PostgresIntake(db)
    taken = request(0)
    await intake.enqueue_or_match(taken, 60, T0)
    batch = [request(n) for n in range(1, 200)]
    batch.insert(137, taken)  # its id is stored already: this row alone cannot be

    results = await asyncio.gather(*(intake.enqueue_or_match(r, 60, T0) for r in batch),
                                   return_exceptions=True)

    assert isinstance(results[137], StoreError)
    assert [r for n, r in enumerate(results) if n != 137] == [None] * 199
    async with db.pool.acquire() as conn:
        commits = await conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM requests WHERE id <> $1", taken.id)
        assert await conn.fetchval("SELECT count(*) FROM requests") == 200
    # Halved down to the bad row: a commit per level (8 for 200 rows), not one per row.
    assert commits <= 10


async def test_a_full_disk_fails_the_batch_at_once(db: Database) -> None:
    # The server's own disk_full error (SQLSTATE 53100), raised by a trigger on every
    # insert statement, which counts the statements in a sequence (not rolled back).
    async with db.pool.acquire() as conn:
        await conn.execute("""
            CREATE SEQUENCE insert_statements;
            CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM nextval('insert_statements');
                RAISE EXCEPTION 'could not extend file: No space left on device'
                    USING ERRCODE = 'disk_full';
            END $$;
            CREATE TRIGGER full_disk BEFORE INSERT ON requests
                FOR EACH STATEMENT EXECUTE FUNCTION disk_full();""")
    intake = PostgresIntake(db)

    results = await asyncio.gather(
        *(intake.enqueue_or_match(request(n), 60, T0) for n in range(100)),
        return_exceptions=True)

    assert all(isinstance(r, StoreFull) for r in results)
    async with db.pool.acquire() as conn:
        statements = await conn.fetchval("SELECT last_value FROM insert_statements")
    assert statements <= 3  # the batches as they arrived, none retried in parts


async def test_resubmissions_racing_from_two_instances_store_one(
        pg_config: StoreConfig) -> None:
    first, second = Database(pg_config), Database(pg_config)
    await first.open()
    await second.open()
    try:
        key = "antrean:kodebooking=KB1:add"
        copies = [request(n, dedup_key=key) for n in range(10)]
        results = await asyncio.gather(*(
            PostgresIntake(first if n % 2 else second).enqueue_or_match(r, 60, T0 + 20)
            for n, r in enumerate(copies)))

        stored = [r for r in results if r is None]
        originals = {r.id for r in results if r is not None}
        assert len(stored) == 1
        async with first.pool.acquire() as conn:
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM requests")]
            refs = [r["ref"] for r in await conn.fetch("SELECT ref FROM chain")]
        assert len(ids) == 1 and originals == set(ids)
        assert refs == ids  # one chain entry: the copies matched, they were not stored
    finally:
        await first.close()
        await second.close()
