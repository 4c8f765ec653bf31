"""`tenang purge --config FILE [--dry-run]`: apply ``[retention]`` once, and exit.

Safe beside a running Tenang on the same SQLite file: each batch is one short write
(WAL lets both connections work, the writer lock is held a batch at a time). Prints how
many requests lost their bodies or rows, per kind (or would, with --dry-run)."""

from __future__ import annotations

import argparse
import sys

from proxy.cli_config import config_arg
from proxy.config import Config, load_config
from proxy.loop import run
from proxy.ops.retention import Purger, PurgeReport, patiently
from proxy.preflight import check_store
from proxy.store import open_store
from proxy.store.errors import StoreError


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser("purge", parents=[common],
                         help="drop what [retention] no longer keeps (old final requests' "
                              "bodies, then rows), and exit")
    config_arg(cmd)
    cmd.add_argument("--dry-run", action="store_true",
                     help="count what would be purged; change nothing")


async def _purge(config: Config, dry_run: bool) -> PurgeReport:
    backend = open_store(config.store)
    # Opening writes too (a SQLite store notes a switch of [audit] chain): beside a
    # serving Tenang it may find the lock held past busy_timeout_ms, like any batch.
    await patiently(backend.open, "opening the store")
    try:
        purger = Purger(backend.retention, config.retention, audit=backend.audit)
        return await purger.run(dry_run=dry_run, actor="tenang purge")
    finally:
        await backend.close()


def main(args: argparse.Namespace) -> int:
    """Run `tenang purge`; ConfigError propagates to the CLI's handler (exit 2)."""
    config = load_config(args.config)
    check_store(config)
    where = config.store.location
    if not config.retention.enabled:
        print(f"tenang: nothing to purge in {where}: [retention] sets neither "
              "bodies_after_days nor rows_after_days (everything is kept)")
        return 0
    try:
        report = run(_purge(config, args.dry_run))
    except StoreError as exc:
        print(f"tenang: cannot purge the database {where}: {exc.reason} ({exc})",
              file=sys.stderr)
        return 1
    print(f"tenang: {'dry run, nothing changed in' if args.dry_run else 'purged'} {where}")
    for line in report.lines():
        print(line)
    return 0
