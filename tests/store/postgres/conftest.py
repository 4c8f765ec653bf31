"""Fixtures of the PostgreSQL backend's own tests (see tests/pg_support.py), and two
instances on one schema (``dbs``, ``backends``) for the tests of what they share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

import asyncpg
import pytest

from proxy.config import StoreConfig
from proxy.store.backend import Backend
from proxy.store.postgres.backend import postgres_backend
from proxy.store.postgres.database import Database
from tests.pg_support import fresh_schema


class Opens(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...


OpensT = TypeVar("OpensT", bound=Opens)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A DSN whose connections use a fresh, empty schema of their own."""
    async with fresh_schema() as url:
        yield url


@pytest.fixture
def pg_config(pg_url: str) -> StoreConfig:
    return StoreConfig(url=pg_url, pool_min=1, pool_max=4, connect_timeout_s=5.0,
                       statement_timeout_s=10.0)


@pytest.fixture
async def pg_conn(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_url)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def all_open(items: list[OpensT]) -> AsyncIterator[list[OpensT]]:
    """``items`` opened one after the other (the first migrates the fresh schema, the
    others find it done), and closed after: those opened, if one fails to open."""
    opened: list[OpensT] = []
    try:
        for item in items:
            await item.open()
            opened.append(item)
        yield opened
    finally:
        for item in opened:
            await item.close()


@pytest.fixture
async def dbs(pg_config: StoreConfig) -> AsyncIterator[tuple[Database, Database]]:
    """Two instances' databases (a pool each) on the one schema."""
    async with all_open([Database(pg_config), Database(pg_config)]) as (a, b):
        yield a, b


@pytest.fixture
async def backends(pg_config: StoreConfig) -> AsyncIterator[tuple[Backend, Backend]]:
    """Two instances' whole backends (a pool each) on the one schema."""
    async with all_open([postgres_backend(pg_config), postgres_backend(pg_config)]) as (a, b):
        yield a, b
