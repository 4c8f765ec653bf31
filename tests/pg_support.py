"""PostgreSQL for tests: the server named by TENANG_TEST_PG_DSN, one fresh schema per test.

CI always sets TENANG_TEST_PG_DSN: `.ci/run` starts a PostgreSQL server where none answers,
creates a database of its own for the run and drops it afterwards. So a PostgreSQL test
skips only on a developer machine without the variable, and under CI (CI=true) a missing
variable fails the test instead of skipping it: the PostgreSQL backend is never left
untested by accident. Locally: createdb on a server with trust auth, then
``TENANG_TEST_PG_DSN=postgresql://postgres@127.0.0.1:5432/DBNAME``.

Each test gets a schema of its own in that database (a fresh database per test would cost
a second each); the DSN names it in ``search_path`` so that every connection a store or a
`tenang` subprocess opens lands in it."""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import asyncpg
import pytest

from bench.pg_store import DSN_ENV, with_search_path


def pg_dsn() -> str:
    """The test server's DSN; skips the test (fails it under CI) when there is none."""
    dsn = os.environ.get(DSN_ENV, "")
    if not dsn:
        message = f"{DSN_ENV} is not set (see tests/pg_support.py)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: .ci/run must provide PostgreSQL")
        pytest.skip(message)
    return dsn


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


_LEFT: list[str] = []  # schemas schema_now() made, dropped when the test process ends


async def _drop_each(dsn: str, schemas: list[str]) -> None:
    # One statement per schema: dropping them all in one takes a lock per object of every
    # schema at once, past max_locks_per_transaction after a whole suite.
    conn = await asyncpg.connect(dsn)
    try:
        for name in schemas:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


def _drop_left(dsn: str) -> None:
    if _LEFT:
        asyncio.run(_drop_each(dsn, _LEFT))


def schema_now() -> str:
    """A DSN on a new empty schema, for code that cannot await (a backend factory called
    from a running event loop): made on a thread of its own, dropped at exit."""
    dsn = pg_dsn()
    name = f"t_{secrets.token_hex(6)}"
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _execute(dsn, f"CREATE SCHEMA {name}")).result()
    if not _LEFT:
        atexit.register(_drop_left, dsn)
    _LEFT.append(name)
    return with_search_path(dsn, name)


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A new empty schema in the test database; dropped with everything in it after."""
    dsn = pg_dsn()
    name = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        yield with_search_path(dsn, name)
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await conn.close()
