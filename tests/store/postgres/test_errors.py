"""asyncpg's errors become the StoreError family SQLite's do: a real unique violation on
the dedup key is DuplicateKey, a closed connection or pool and an unreachable or
restarting server are StoreUnavailable (intake answers 503 and the SIMRS retries), a
full disk is StoreFull."""

from __future__ import annotations

import asyncpg
import pytest

from proxy.config import StoreConfig
from proxy.store.errors import Conflict, DuplicateKey, StoreError, StoreFull, StoreUnavailable
from proxy.store.postgres.errors import translate, translated
from proxy.store.postgres.migrations import migrate
from proxy.store.postgres.pool import create_pool

INSERT = ("INSERT INTO requests (id, upstream, method, path, query, headers, body, "
          "received_at, status, updated_at, dedup_key) "
          "VALUES ($1, 'antrean', 'POST', '/x', '', '[]', ''::bytea, 1, 'pending', 1, $2)")


async def test_a_taken_dedup_key_is_duplicate_key(pg_conn: asyncpg.Connection) -> None:
    await migrate(pg_conn)
    await pg_conn.execute(INSERT, "r1", "antrean:KB1")

    with pytest.raises(DuplicateKey) as caught, translated():
        await pg_conn.execute(INSERT, "r2", "antrean:KB1")

    assert caught.value.reason == "a request with this dedup key already exists"
    assert isinstance(caught.value.__cause__, asyncpg.UniqueViolationError)


async def test_another_taken_key_is_a_conflict(pg_conn: asyncpg.Connection) -> None:
    await migrate(pg_conn)
    add = "INSERT INTO users (name, password_hash, role, created_at) VALUES ('ani', 'h', 'a', 1)"
    await pg_conn.execute(add)

    with pytest.raises(Conflict), translated():
        await pg_conn.execute(add)


async def test_a_closed_connection_is_unavailable(pg_conn: asyncpg.Connection) -> None:
    await pg_conn.close()

    with pytest.raises(StoreUnavailable) as caught, translated():
        await pg_conn.fetchval("SELECT 1")

    assert caught.value.reason == "store unavailable (database locked or closed)"


async def test_a_closed_pool_is_unavailable(pg_config: StoreConfig) -> None:
    pool = await create_pool(pg_config)
    await pool.close()

    with pytest.raises(StoreUnavailable), translated():
        await pool.fetchval("SELECT 1")


async def test_a_connection_the_server_ended_is_unavailable(
        pg_config: StoreConfig, pg_conn: asyncpg.Connection) -> None:
    """What a server restart or failover does to the connections Tenang holds."""
    pool = await create_pool(pg_config)
    try:
        async with pool.acquire() as conn:
            # Waits (up to 5 s) until that backend is gone.
            assert await pg_conn.fetchval("SELECT pg_terminate_backend($1, 5000)",
                                          conn.get_server_pid())
            with pytest.raises(StoreUnavailable), translated():
                await conn.fetchval("SELECT 1")
        # The pool replaces the connection the server ended.
        with translated():
            assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_server_that_does_not_answer_is_unavailable() -> None:
    config = StoreConfig(url="postgresql://tenang@127.0.0.1:1/tenang", pool_min=1,
                         pool_max=1, connect_timeout_s=2.0)

    with pytest.raises(StoreUnavailable):
        await create_pool(config)


async def test_a_statement_past_its_timeout_is_unavailable(pg_config: StoreConfig) -> None:
    pool = await create_pool(pg_config)
    try:
        with pytest.raises(StoreUnavailable), translated():
            async with pool.acquire() as conn:
                await conn.execute("SET statement_timeout = '50ms'")
                await conn.execute("SELECT pg_sleep(5)")
    finally:
        await pool.close()


@pytest.mark.parametrize(("error", "expected"), [
    (asyncpg.DiskFullError("could not extend file: No space left on device"), StoreFull),
    (asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only "
                                         "transaction"), StoreUnavailable),
    (asyncpg.CannotConnectNowError("the database system is starting up"), StoreUnavailable),
    (asyncpg.TooManyConnectionsError("sorry, too many clients already"), StoreUnavailable),
    (asyncpg.DeadlockDetectedError("deadlock detected"), StoreUnavailable),
    (asyncpg.UndefinedTableError('relation "requests" does not exist'), StoreError),
])
def test_server_errors_that_cannot_be_provoked_here_map_by_sqlstate(
        error: Exception, expected: type[StoreError]) -> None:
    translated_error = translate(error)

    assert type(translated_error) is expected
    assert str(translated_error) == str(error)
