"""PostgreSQL for the benchmarks: a schema of the run's own in the database a DSN names
(CI: TENANG_TEST_PG_DSN from .ci/postgres.sh), dropped afterwards, and reads of it.

A schema, not a database: a DSN's user may be allowed to create schemas in its database
but not databases. Its URL names the schema in ``search_path``, so every connection a
`tenang` process opens (serve, migrate-store) lands in it."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DSN_ENV = "TENANG_TEST_PG_DSN"


def default_dsn() -> str:
    return os.environ.get(DSN_ENV, "")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with its connections' search_path set to ``schema`` (asyncpg passes unknown
    query parameters on as server settings)."""
    parts = urlsplit(dsn)
    query = "&".join(p for p in (parts.query, f"search_path={schema}") if p)
    return urlunsplit(parts._replace(query=query))


def _base(url: str) -> str:
    """``url`` without its query: asyncpg.connect takes search_path as an argument."""
    return urlunsplit(urlsplit(url)._replace(query=""))


async def _run(dsn: str, sql: str, *args: Any, search_path: str | None = None) -> Any:
    """The first row of ``sql``'s answer (None without one)."""
    settings = {"search_path": search_path} if search_path else None
    conn = await asyncpg.connect(_base(dsn), server_settings=settings, timeout=10)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


@contextmanager
def pg_schema(dsn: str, tag: str) -> Iterator[str]:
    """A new empty schema in ``dsn``'s database; its URL. Dropped with all in it after."""
    name = f"bench_{tag}_{secrets.token_hex(4)}"
    asyncio.run(_run(dsn, f"CREATE SCHEMA {name}"))
    try:
        yield with_search_path(dsn, name)
    finally:
        asyncio.run(_run(dsn, f"DROP SCHEMA IF EXISTS {name} CASCADE"))


def pg_row(url: str, sql: str, *args: Any) -> tuple[Any, ...]:
    """One row read from the schema ``url`` names (as made by ``pg_schema``)."""
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&") if "=" in p)
    return tuple(asyncio.run(_run(url, sql, *args, search_path=query.get("search_path"))))


def pg_value(url: str, sql: str, *args: Any) -> Any:
    """The one value of ``sql``'s one row."""
    return pg_row(url, sql, *args)[0]
