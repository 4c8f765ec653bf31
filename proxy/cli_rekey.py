"""`tenang rekey --config FILE`: re-encrypt every stored body, response body and
callback payload under the current key of ``[store] encryption_key_env`` (plaintext
ones, stored before encryption was on, too), then exit.

Runs beside a serving Tenang on the same store (each batch is one short transaction; a
value changed meanwhile is left as it is) or with Tenang stopped. Rotation: put the new
key first in the keyring and keep the old one after it, restart Tenang, run this, then
drop the old key (README, "Encryption at rest")."""

from __future__ import annotations

import argparse
import sys

from proxy.cli_config import config_arg
from proxy.config import Config, ConfigError, load_config
from proxy.loop import run
from proxy.ops.rekey import RekeyReport, rekey
from proxy.ops.retention import patiently
from proxy.preflight import check_store
from proxy.store import keyring, open_store
from proxy.store.errors import StoreError


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser("rekey", parents=[common],
                         help="re-encrypt every stored body under the current key of "
                              "[store] encryption_key_env, and exit")
    config_arg(cmd)


async def _rekey(config: Config, current: str, previous: list[str]) -> RekeyReport:
    backend = open_store(config.store)
    # Opening writes (the key check records the current key id): beside a serving
    # Tenang it may find the lock held past busy_timeout_ms, like any batch.
    await patiently(backend.open, "opening the store", "rekey")
    try:
        return await rekey(backend.sealing, backend.audit, current, previous)
    finally:
        await backend.close()


def main(args: argparse.Namespace) -> int:
    """Run `tenang rekey`; ConfigError propagates to the CLI's handler (exit 2)."""
    config = load_config(args.config)
    check_store(config)
    keys = keyring(config.store)
    if keys.current is None:
        raise ConfigError("store.encryption_key_env: not set, so there is no key to "
                          "re-encrypt under (set it to the keyring's variable first)")
    where = config.store.location
    try:
        report = run(_rekey(config, keys.current, sorted(keys.key_ids - {keys.current})))
    except StoreError as exc:
        print(f"tenang: cannot rekey the database {where}: {exc.reason} ({exc})",
              file=sys.stderr)
        return 1
    print(f"tenang: rekeyed {where}")
    for line in report.lines():
        print(line)
    return 1 if report.left_behind else 0
