"""`tenang audit checkpoint | verify`: the hash chain over what Tenang stored (issue 14).

    tenang audit checkpoint --config FILE [--note TEXT]
    tenang audit verify --config FILE [--from-checkpoint HASH]
    tenang audit verify --export PATH [--config FILE]

``checkpoint`` prints the chain's head as one JSON line ({"head", "seq", "at"}) and records
it in the store; keep a copy off the machine (mail it, print it, put it in the audit
file): a checkpoint nobody could change is what proves the chain before it was not
rewritten. ``verify --config`` walks the chain (``proxy.ops.audit_chain``) and exits 0
when it is intact, 1 naming the first broken record, 2 when the checkpoint named is
unknown or the store cannot be read, 3 when the chain is switched off (``[audit] chain =
false``: what is stored meanwhile is in no chain, so nothing proves it; the chain up to
the switch is still checked and reported); each run is recorded (the admin UI shows the
last). Periods the chain was off and is on again are named too (exit 0 if intact).
``verify --export`` checks an auditor's export against its manifest, and with
``--config`` its chain head against the store's chain (``proxy.cli_export``).
Tenang may be serving meanwhile: SQLite lets these in between its commits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from proxy import cli_export
from proxy.config import load_config
from proxy.loop import run
from proxy.ops.audit_chain import (
    OffPeriod,
    UnknownCheckpoint,
    off_periods,
    off_since,
    verify_chain,
)
from proxy.shapes import iso_utc
from proxy.store import open_store
from proxy.store.chain import Checkpoint, Verification, parse_hash
from proxy.store.errors import StoreError


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", parents=[common],
                           help="check what Tenang recorded: the hash chain, exports")
    checks = audit.add_subparsers(dest="audit_command", required=True, metavar="CHECK")
    point = checks.add_parser("checkpoint", parents=[common],
                              help="print the hash chain's head (hash, seq, time) and "
                                   "record it")
    point.add_argument("--config", type=Path, required=True, help="path to the TOML config")
    point.add_argument("--note", default=None, help="kept with the checkpoint")
    verify = checks.add_parser(
        "verify", parents=[common],
        help="recompute the hash chain (--config) or check an export (--export)")
    verify.add_argument("--config", type=Path,
                        help="path to the TOML config: its store's chain is verified (or, "
                             "with --export, the export's chain head is looked up in it)")
    verify.add_argument("--export", type=Path,
                        help="check this export file against its manifest "
                             "(EXPORT.manifest.json) instead")
    verify.add_argument("--from-checkpoint", metavar="HASH", default=None,
                        help="start at this checkpoint's head (64 hex digits, as "
                             "`tenang audit checkpoint` printed it) instead of the start")


def main(args: argparse.Namespace) -> int:
    if args.audit_command == "checkpoint":
        return _checkpoint(args.config, args.note)
    if args.export is not None:
        if args.from_checkpoint is not None:
            raise ValueError("--from-checkpoint goes with --config alone, not --export")
        return cli_export.audit_main(args)
    if args.config is None:
        raise ValueError("audit verify: give --config FILE (the chain) or --export PATH")
    return _verify(args.config, args.from_checkpoint)


def checkpoint_json(c: Checkpoint) -> str:
    return json.dumps({"head": c.head.hex(), "seq": c.seq, "at": iso_utc(c.at)})


def _checkpoint(config_path: Path, note: str | None) -> int:
    async def take() -> Checkpoint:
        backend = open_store(load_config(config_path).store)
        await backend.open()
        try:
            return await backend.chain.checkpoint(time.time(), note)
        finally:
            await backend.close()

    try:
        taken = run(take())
    except StoreError as exc:
        print(f"tenang: cannot record a checkpoint: {exc}", file=sys.stderr)
        return 2
    print(checkpoint_json(taken))
    return 0


def _verify(config_path: Path, from_checkpoint: str | None) -> int:
    try:
        from_head = None if from_checkpoint is None else parse_hash(from_checkpoint)
    except ValueError:
        raise ValueError(f"--from-checkpoint {from_checkpoint!r}: a chain hash is 64 hex "
                         "digits") from None

    config = load_config(config_path)

    async def walk() -> tuple[Verification, list[OffPeriod]]:
        backend = open_store(config.store)
        await backend.open()
        try:
            result = await verify_chain(backend.chain, time.time(), from_head=from_head)
            return result, await off_periods(backend.audit)
        finally:
            await backend.close()

    try:
        result, periods = run(walk())
    except UnknownCheckpoint:
        print(f"tenang: no checkpoint with head {from_checkpoint} in this store "
              "(was the chain rewritten, or is this another store?)", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"tenang: cannot read the store: {exc}", file=sys.stderr)
        return 2
    if result.broken is not None:
        print(f"tenang: hash chain BROKEN at {result.broken.describe()}", file=sys.stderr)
        return 1
    start = f"checkpoint seq {result.from_seq}" if result.from_seq else "the start"
    print(f"tenang: hash chain intact: {result.checked} entries checked from {start} to "
          f"seq {result.head_seq}")
    for p in periods:
        if p.until is not None:
            print(f"tenang: note: the hash chain was off from {iso_utc(p.since)} to "
                  f"{iso_utc(p.until)}: what was stored then is not in it")
    if not config.audit.chain:
        off = off_since(periods)
        since = "" if off is None else f" since {iso_utc(off)}"
        print(f"tenang: the hash chain is OFF{since} ([audit] chain = false in "
              f"{config_path}): nothing stored while it is off can be verified",
              file=sys.stderr)
        return 3
    return 0
