"""`tenang export` and `tenang audit verify --export`: an export for auditors and its check.

    tenang export --config FILE --since DATE --until DATE --format jsonl|csv
                  [--upstream NAME] [--status S] --output PATH
    tenang audit verify --export PATH [--config FILE]

The export reads the store read-only (the SQLite file, or one snapshot of the
PostgreSQL database; Tenang may be serving or stopped) and writes PATH and
PATH.manifest.json, both only once complete (``proxy.ops.export``).
Verification exits 0 when the export matches its manifest, 1 naming each difference,
2 when either cannot be read.

The ``audit`` command group (and its ``verify --config`` of the hash chain) is
``proxy.cli_audit``'s; it hands ``verify --export`` to ``audit_main`` here.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from proxy.cli_config import config_arg
from proxy.config import load_config
from proxy.lifecycle import Status
from proxy.ops.export import ExportFilter, Format, check_output, write_export
from proxy.ops.export_manifest import ManifestError, describe, manifest_path, verify_export
from proxy.ops.request_log import parse_day
from proxy.store import export_chain, export_reader
from proxy.store.errors import StoreError


def _day(text: str) -> date:
    day = parse_day(text)
    if day is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day (dd/mm/yyyy or yyyy-mm-dd, in WIB)")
    return day


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    export = sub.add_parser(
        "export", parents=[common],
        help="write the requests of a range of days, with attempts and results, for "
             "auditors (and a manifest beside it)")
    config_arg(export)
    export.add_argument("--since", type=_day, required=True,
                        help="first day, in WIB (dd/mm/yyyy or yyyy-mm-dd)")
    export.add_argument("--until", type=_day, required=True,
                        help="last day, in WIB, included")
    export.add_argument("--format", choices=[f.value for f in Format], required=True,
                        help="jsonl: one JSON object per request, attempts nested; csv: "
                             "one row per request, attempts as a JSON column")
    export.add_argument("--upstream", default=None, help="only this upstream's requests")
    export.add_argument("--status", choices=[s.value for s in Status], default=None,
                        help="only requests in this status now")
    export.add_argument("--output", type=Path, required=True,
                        help="the file to write (must not exist); its manifest is "
                             "written beside it as OUTPUT.manifest.json")


def export_main(args: argparse.Namespace) -> int:
    """Run `tenang export`; ConfigError / ValueError reach the CLI's handler (exit 2)."""
    config = load_config(args.config)
    filters = ExportFilter(args.since, args.until, args.upstream,
                           None if args.status is None else Status(args.status))
    known = [u.name for u in config.upstreams]
    if filters.upstream is not None and filters.upstream not in known:
        print(f"tenang: note: upstream {filters.upstream!r} is not in the config "
              f"({', '.join(known)}); exporting what the store holds for it",
              file=sys.stderr)
    output: Path = args.output
    try:
        check_output(output)
    except OSError as exc:
        print(f"tenang: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    db = config.store.location
    try:
        pages = export_reader(config.store)(filters.request_filter())
        manifest = write_export(pages, Format(args.format), output, filters, time.time(),
                                export_chain(config.store).head)
    except StoreError as exc:
        print(f"tenang: cannot read the database {db}: {exc.reason} ({exc})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tenang: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"tenang: wrote {output} ({describe(manifest)}) and {manifest_path(output)}")
    return 0


def audit_main(args: argparse.Namespace) -> int:
    """`tenang audit verify --export PATH [--config FILE]`: with the config, the
    manifest's chain head is checked against that store's chain."""
    export: Path = args.export
    chain_at = None
    if args.config is not None:
        chain_at = export_chain(load_config(args.config).store).head_at
    try:
        differences = verify_export(export, chain_at)
    except ManifestError as exc:
        print(f"tenang: cannot verify: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"tenang: cannot read the store's chain: {exc}", file=sys.stderr)
        return 2
    if differences:
        print(f"tenang: {export} does NOT match its manifest {manifest_path(export)}:",
              file=sys.stderr)
        for difference in differences:
            print(f"  {difference}", file=sys.stderr)
        return 1
    print(f"tenang: {export} matches its manifest {manifest_path(export)}")
    return 0
