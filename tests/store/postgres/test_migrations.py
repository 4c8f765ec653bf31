"""The PostgreSQL schema's migrations: from an empty schema to the newest version, again
without change, from several instances starting at once, and refusing a schema that
does not match this Tenang when start-up migrations are off; the connection migrated on
is reset before intake uses it."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from proxy.config import StoreConfig
from proxy.store.errors import StoreError
from proxy.store.postgres.database import Database
from proxy.store.postgres.migrations import (
    LATEST,
    VERSION_TABLE,
    migrate,
    require_current,
    schema_version,
)
from proxy.store.postgres.pool import create_pool

TABLES = {"requests", "attempts", "health", "users", "sessions", "audit_log",
          "maintenance_windows", "callbacks", "bulk_jobs", "request_counts", "breakers",
          "send_rates", "notices", "chain", "chain_head", "checkpoints", "verifications",
          "send_slots", "sealing_keys", "live_waits", VERSION_TABLE}


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {r["tablename"] for r in rows}


async def versions(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch(f"SELECT version FROM {VERSION_TABLE} ORDER BY version")
    return [r["version"] for r in rows]


async def test_migrations_apply_to_an_empty_schema(pg_conn: asyncpg.Connection) -> None:
    assert await schema_version(pg_conn) == 0
    assert await tables(pg_conn) == set()

    assert await migrate(pg_conn) == LATEST

    assert await tables(pg_conn) == TABLES
    assert await versions(pg_conn) == list(range(1, LATEST + 1))
    assert await schema_version(pg_conn) == LATEST


async def test_migrating_again_changes_nothing(pg_conn: asyncpg.Connection) -> None:
    await migrate(pg_conn)
    await pg_conn.execute("INSERT INTO users (name, password_hash, role, created_at) "
                          "VALUES ('ani', 'h', 'admin', 1)")

    assert await migrate(pg_conn) == LATEST

    assert await versions(pg_conn) == list(range(1, LATEST + 1))
    assert await pg_conn.fetchval("SELECT count(*) FROM users") == 1


async def test_instances_starting_at_once_take_turns(pg_config: StoreConfig) -> None:
    """Without the lock, the second CREATE TABLE of the same name fails (or both insert
    version 1); with it, one migrates and the others find the schema current."""
    conns = [await asyncpg.connect(pg_config.url) for _ in range(4)]
    try:
        reached = await asyncio.gather(*(migrate(c) for c in conns))
        assert reached == [LATEST] * 4
        assert await versions(conns[0]) == list(range(1, LATEST + 1))
        assert await tables(conns[0]) == TABLES
    finally:
        for c in conns:
            await c.close()


async def test_a_pool_from_the_store_config_migrates(pg_config: StoreConfig) -> None:
    pool = await create_pool(pg_config)
    try:
        async with pool.acquire() as conn:
            assert await migrate(conn) == LATEST
        assert await pool.fetchval("SHOW application_name") == "tenang"
        assert await pool.fetchval("SHOW statement_timeout") == "10s"
    finally:
        await pool.close()


async def test_a_newer_schema_is_refused(pg_conn: asyncpg.Connection) -> None:
    await migrate(pg_conn)
    await pg_conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ($1)", LATEST + 1)

    with pytest.raises(StoreError, match=f"newer than this Tenang \\(v{LATEST}\\)"):
        await migrate(pg_conn)
    with pytest.raises(StoreError, match="newer"):
        await require_current(pg_conn)


async def test_without_start_up_migrations_an_old_schema_is_refused(
        pg_conn: asyncpg.Connection) -> None:
    with pytest.raises(StoreError, match=r"v0 is older .* run `tenang migrate"):
        await require_current(pg_conn)
    await migrate(pg_conn)
    await require_current(pg_conn)
    assert await tables(pg_conn) == TABLES


async def test_the_migration_lock_is_released(pg_config: StoreConfig) -> None:
    """Another session can take the lock once a migration has finished (so the next
    deploy's migrate does not wait for this connection to close)."""
    first, second = [await asyncpg.connect(pg_config.url) for _ in range(2)]
    try:
        await migrate(first)
        held = await second.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
            first.get_server_pid())
        assert held == 0
        assert await asyncio.wait_for(migrate(second), timeout=10) == LATEST
    finally:
        await first.close()
        await second.close()


async def test_the_connection_a_store_migrated_on_serves_like_any_other(
        pg_config: StoreConfig) -> None:
    """The pool resets no session on release (pool.py): the connection the migration ran
    on (statement_timeout 0, the advisory lock) comes back to intake as configured."""
    db = Database(dataclasses.replace(pg_config, pool_min=1, pool_max=1))
    await db.open()
    try:
        async with db.pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "10s"
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = "
                "pg_backend_pid()") == 0
            assert not conn.is_in_transaction()
    finally:
        await db.close()
