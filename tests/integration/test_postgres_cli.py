"""`tenang migrate` and the PostgreSQL store as an operator meets it: migrate brings a
database (or a SQLite file) to this Tenang's schema and says so, twice changes nothing,
an unreachable server ends it with one line; check-config connects (one line and exit 2
when it cannot), `tenang user add` writes into it."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import asyncpg
import pytest

from proxy.cli import main
from proxy.store.postgres.migrations import LATEST, schema_version
from proxy.store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.integration.test_start_stop import one_line_error, tenang, write_config
from tests.pg_support import fresh_schema, schema_now


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


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """cli.main, run in this process, installs its log handler: put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_check_config_on_an_unreachable_server_ends_with_one_line_and_exit_2(
        tmp_path: Path, restored_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://tenang@no-such-host.invalid:5432/tenang"
    config = write_config(tmp_path, store=url, extra="connect_timeout_s = 2.0\n")

    assert main(["check-config", "--config", str(config)]) == 2

    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.err, out.err
    assert "OK" not in out.out
    assert lines[0].startswith(
        f"tenang: configuration error: store.url: cannot connect to {url}: "), lines[0]


def test_check_config_connects_and_says_what_start_will_do_to_the_schema(
        tmp_path: Path, restored_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    url = schema_now()
    config = write_config(tmp_path, store=url)

    assert main(["check-config", "--config", str(config)]) == 0

    assert (f"database: {url} (reachable, schema v0: migrated to v{LATEST} at start)"
            in capsys.readouterr().out)


def test_user_add_writes_the_user_into_the_postgresql_store(
        tmp_path: Path, restored_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    url = schema_now()
    config = write_config(tmp_path, store=url)
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))

    assert main(["user", "add", "ani", "--role", "admin", "--config", str(config),
                 "--password-stdin"]) == 0

    async def role() -> str | None:
        conn = await asyncpg.connect(url)
        try:
            return cast(str | None, await conn.fetchval(
                "SELECT role FROM users WHERE name = 'ani'"))
        finally:
            await conn.close()

    assert asyncio.run(role()) == "admin"
