"""The PostgreSQL schema's migrations (schema.sql's "-- version N --" blocks), applied in
order and recorded in tenang_schema_version.

Several instances may start at once against one database: each takes a session-level
advisory lock first, so one applies the missing versions while the others wait, then
find nothing left to do. Each version commits with its row in the version table (DDL is
transactional in PostgreSQL), so a migration that fails or is interrupted leaves the
schema at the version before it."""

from __future__ import annotations

import contextlib
import logging
import re

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from proxy.store.errors import StoreError
from proxy.store.postgres.errors import DRIVER_ERRORS, translated
from proxy.store.postgres.sql import load

# A connection of its own or one borrowed from the pool: migrations run on either.
Conn = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger(__name__)

VERSION_TABLE = "tenang_schema_version"
_VERSION = re.compile(r"^version ([1-9][0-9]*)$")
# One lock per schema (tests give each run a schema of its own), taken from a fixed text.
_LOCK_KEY = "hashtextextended('tenang migrations ' || current_schema(), 0)"


def _migrations() -> tuple[str, ...]:
    versions = load("schema.sql")
    numbers = [int(m[1]) for m in map(_VERSION.match, versions) if m]
    if len(numbers) != len(versions) or numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"schema.sql: blocks must be version 1..N in order, got {list(versions)}")
    return tuple(versions.values())


MIGRATIONS = _migrations()
LATEST = len(MIGRATIONS)


async def schema_version(conn: Conn) -> int:
    """The version the database is at (0: never migrated)."""
    with translated():
        if await conn.fetchval("SELECT to_regclass($1) IS NULL", VERSION_TABLE):
            return 0
        return int(await conn.fetchval(f"SELECT COALESCE(max(version), 0) FROM {VERSION_TABLE}"))


def _too_new(version: int) -> StoreError:
    return StoreError(f"database schema v{version} is newer than this Tenang (v{LATEST})")


async def migrate(conn: Conn) -> int:
    """Bring the schema to the newest version; returns the version reached."""
    with translated():
        # A long migration (an index over a million rows) must not hit the pool's
        # statement_timeout, nor may waiting for another instance's migration.
        await conn.execute("SET statement_timeout = 0")
        if not await conn.fetchval(f"SELECT pg_try_advisory_lock({_LOCK_KEY})"):
            log.info("store: another instance is migrating the schema; waiting for it")
            await conn.execute(f"SELECT pg_advisory_lock({_LOCK_KEY})")
        try:
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
                               "version integer PRIMARY KEY, "
                               "applied_at timestamptz NOT NULL DEFAULT now())")
            current = await schema_version(conn)
            if current > LATEST:
                raise _too_new(current)
            for version in range(current + 1, LATEST + 1):
                async with conn.transaction():
                    await conn.execute(MIGRATIONS[version - 1])
                    await conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ($1)",
                                       version)
                log.info("store: schema migrated to v%d", version)
        finally:
            # A broken connection took its lock with it (the server frees it); a pooled
            # one is also reset on release (asyncpg runs pg_advisory_unlock_all()).
            if not conn.is_closed():
                with contextlib.suppress(*DRIVER_ERRORS):
                    await conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
                    await conn.execute("RESET statement_timeout")
    return LATEST


async def require_current(conn: Conn) -> None:
    """With ``[store] migrate = false``: refuse a schema other than this Tenang's."""
    version = await schema_version(conn)
    if version > LATEST:
        raise _too_new(version)
    if version < LATEST:
        raise StoreError(f"database schema v{version} is older than this Tenang (v{LATEST}):"
                         " run `tenang migrate --config FILE` first")
