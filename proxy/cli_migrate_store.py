"""`tenang migrate-store --from sqlite:///PATH --to postgresql://USER@HOST:PORT/DBNAME`:
copy a single-node SQLite store into an empty PostgreSQL database, with Tenang stopped
(the cut-over: README, "Moving a SQLite store to PostgreSQL").

It prints the rows copied per table and a count check (SQLite against PostgreSQL, per
table, and the queue's counts per upstream and status); it commits only if every count
matches. Exit 0: copied and checked; 1: nothing copied (the SQLite file is in use, the
server cannot be reached, a count did not match); 2: nothing copied, and running it
again will not help until someone changes something (a URL, a non-empty target, a
schema from another Tenang version). See ``proxy.store.postgres.from_sqlite``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.config import (
    POSTGRES_SCHEME,
    SQLITE_SCHEME,
    ConfigError,
    StoreConfig,
    postgres_url_problem,
)
from proxy.loop import run
from proxy.store.errors import StoreError, StoreUnavailable

COPY_TIMEOUT_S = 24 * 3600.0

if TYPE_CHECKING:
    from proxy.store.postgres.from_sqlite import Report


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser(
        "migrate-store", parents=[common],
        help="copy a stopped single-node SQLite store into an empty PostgreSQL database")
    cmd.add_argument("--from", dest="source", required=True, metavar="sqlite:///PATH",
                     help="the SQLite store (its [store] url); Tenang must be stopped")
    cmd.add_argument("--to", dest="target", required=True,
                     metavar="postgresql://USER@HOST:PORT/DBNAME",
                     help="an empty PostgreSQL database (no password in the URL)")
    cmd.add_argument("--password-env", default="", metavar="NAME",
                     help="the environment variable holding the database password (as "
                          "[store] password_env; default: libpq's PGPASSWORD or ~/.pgpass)")


def _source_path(url: str) -> Path:
    if not url.startswith(SQLITE_SCHEME) or url == SQLITE_SCHEME:
        raise ConfigError(f'--from: must be "sqlite:///PATH", got {url!r}')
    return Path(url.removeprefix(SQLITE_SCHEME)).resolve()


def _target_config(url: str, password_env: str) -> StoreConfig:
    problem = postgres_url_problem(url) if url.startswith(POSTGRES_SCHEME) else (
        'must be "postgresql://USER@HOST:PORT/DBNAME"')
    if problem is not None:
        raise ConfigError(f"--to: {problem}")
    password = os.environ.get(password_env) or None if password_env else None
    if password_env and password is None:
        raise ConfigError(f"--password-env: {password_env} is not set")
    # One COPY of a million requests outlasts any serving statement limit, and the client
    # enforces its own (statement_timeout_s plus a margin) besides the server's, which
    # the copy turns off: a day stands for "no limit" on both.
    return StoreConfig(url=url, password_env=password_env, password=password, pool_min=1,
                       pool_max=1, statement_timeout_s=COPY_TIMEOUT_S)


def _print_progress(table: str, rows: int, seconds: float) -> None:
    print(f"  {table:<20} {rows:>10} rows copied in {seconds:.1f} s", flush=True)


def _print_report(report: Report) -> None:
    print(f"  {'table':<20} {'sqlite':>10} {'postgresql':>10}")
    for c in report.counts:
        print(f"  {c.table:<20} {c.sqlite:>10} {c.postgres:>10}  "
              f"{'ok' if c.equal else 'MISMATCH'}")
    print(f"  {'queue counts':<20} {'':>10} {'':>10}  "
          f"{'ok' if report.queue_counts_equal else 'MISMATCH'} "
          "(requests per upstream and status)")


async def _copy(source: Path, target: StoreConfig) -> Report:
    # Imported here: every other command starts without the PostgreSQL driver.
    from proxy.store.postgres.from_sqlite import copy_store, open_source
    from proxy.store.postgres.pool import connect

    src = open_source(source)
    try:
        conn = await connect(target)
        try:
            return await copy_store(src, conn, _print_progress)
        finally:
            await conn.close()
    finally:
        src.close()


def main(args: argparse.Namespace) -> int:
    source = _source_path(args.source)
    target = _target_config(args.target, args.password_env)
    print(f"tenang: copying {source} into {target.url}", flush=True)
    try:
        report = run(_copy(source, target))
    except StoreError as exc:
        print(f"tenang: cannot migrate the store: {exc.reason} ({exc})", file=sys.stderr)
        return 1 if isinstance(exc, StoreUnavailable) else 2
    _print_report(report)
    if not report.ok:
        print("tenang: counts differ: nothing was committed, the target is unchanged",
              file=sys.stderr)
        return 1
    total = sum(c.postgres for c in report.counts)
    print(f"tenang: {total} rows copied and checked in {report.seconds:.1f} s; now point "
          f"[store] url at {target.url} and start Tenang", flush=True)
    return 0
