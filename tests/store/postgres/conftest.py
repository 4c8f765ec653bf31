"""Fixtures of the PostgreSQL backend's own tests (see tests/pg_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from proxy.config import StoreConfig
from tests.pg_support import fresh_schema


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
