"""`tenang migrate --config FILE`: bring the store's schema to this Tenang's version.

For a PostgreSQL store with ``[store] migrate = false`` this is the upgrade step (run
once, by a role allowed to run DDL, before the new version's instances start). Running
it while instances serve, or from several hosts at once, is safe: migrations take turns
on an advisory lock and each version commits whole. A SQLite file is migrated whenever
it is opened; the command does just that, e.g. to upgrade before a planned start."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from proxy.cli_config import config_arg
from proxy.config import Config, StoreConfig, load_config
from proxy.loop import run
from proxy.preflight import check_data_dir
from proxy.store.errors import StoreError


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser("migrate", parents=[common],
                         help="apply the store's schema migrations, and exit")
    config_arg(cmd)


async def _migrate_postgres(store: StoreConfig) -> int:
    from proxy.store.postgres.migrations import migrate
    from proxy.store.postgres.pool import connect

    conn = await connect(store)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def _migrate_sqlite(config: Config) -> int:
    from proxy.store.sqlite.schema import migrate
    from proxy.store.sqlite.writer import connect_writer, translate

    check_data_dir(config)
    path = config.store.sqlite_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from exc
    try:
        conn = connect_writer(path, config.store.busy_timeout_ms)
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    try:
        return migrate(conn)
    finally:
        conn.close()


def main(args: argparse.Namespace) -> int:
    """Run `tenang migrate`; ConfigError propagates to the CLI's handler (exit 2)."""
    config = load_config(args.config)
    where = config.store.location
    try:
        if config.store.is_postgres:
            version = run(_migrate_postgres(config.store))
        else:
            version = _migrate_sqlite(config)
    except StoreError as exc:
        print(f"tenang: cannot migrate the database {where}: {exc.reason} ({exc})",
              file=sys.stderr)
        return 1
    print(f"tenang: database {where} is at schema v{version}")
    return 0
