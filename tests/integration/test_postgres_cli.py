"""`tenang migrate` and the PostgreSQL store as an operator meets it: migrate brings a
database (or a SQLite file) to this Tenang's schema and says so, twice changes nothing,
an unreachable server ends it with one line; while the backend is incomplete,
check-config and serve refuse a postgresql:// store instead of half-working."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from proxy.store.postgres import INCOMPLETE
from proxy.store.postgres.migrations import LATEST, schema_version
from proxy.store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.integration.test_start_stop import one_line_error, tenang, write_config
from tests.pg_support import fresh_schema


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


async def test_migrate_brings_a_postgresql_database_to_the_schema(
        tmp_path: Path, pg_url: str) -> None:
    config = write_config(tmp_path, store=pg_url, extra="migrate = false\n")

    first = tenang("migrate", "--config", str(config))
    again = tenang("migrate", "--config", str(config))

    for result in (first, again):
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"tenang: database {pg_url} is at schema v{LATEST}"
    conn = await asyncpg.connect(pg_url)
    try:
        assert await schema_version(conn) == LATEST
    finally:
        await conn.close()


def test_migrate_brings_a_sqlite_file_to_the_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    result = tenang("migrate", "--config", str(config))

    assert result.returncode == 0, result.stderr
    db = tmp_path / "data" / "tenang.db"
    assert result.stdout.strip() == (
        f"tenang: database {db} is at schema v{len(SQLITE_MIGRATIONS)}")
    assert db.exists()


def test_migrate_against_no_server_ends_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, store="postgresql://tenang@127.0.0.1:1/tenang",
                          extra="connect_timeout_s = 2.0\n")

    result = tenang("migrate", "--config", str(config))

    assert result.returncode == 1
    assert one_line_error(result).startswith(
        "tenang: cannot migrate the database postgresql://tenang@127.0.0.1:1/tenang: "
        "store unavailable (database locked or closed) (")


@pytest.mark.skipif(INCOMPLETE is None, reason="the PostgreSQL store is complete")
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_an_incomplete_postgresql_store_is_refused(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, store="postgresql://tenang@127.0.0.1:5432/tenang")

    result = tenang(command, "--config", str(config))

    assert result.returncode == 2
    assert one_line_error(result) == f"tenang: configuration error: store.url: {INCOMPLETE}"
    assert not (tmp_path / "postgresql:").exists()


def test_user_add_refuses_an_incomplete_postgresql_store(tmp_path: Path) -> None:
    """Not a SQLite file at a path spelled like the URL."""
    config = write_config(tmp_path, store="postgresql://tenang@127.0.0.1:5432/tenang")

    result = tenang("user", "add", "ani", "--role", "admin", "--config", str(config),
                    "--password-stdin", stdin="correct horse battery\n")

    assert result.returncode == 2
    assert "store.url: postgresql store: not yet complete" in one_line_error(result)
