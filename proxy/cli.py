"""Command line: `tenang serve | check-config | migrate | migrate-store | purge | rekey |
demo | simulate-bpjs | user | export | audit`
(also `python -m proxy`).

Exit codes: 0 done, 1 a start that failed at run time (a port in use, a database that
cannot be opened: worth a retry, e.g. by systemd), 2 a configuration or usage error
(retrying will not help until someone edits something)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from pathlib import Path

from proxy import (
    cli_audit,
    cli_export,
    cli_migrate,
    cli_migrate_store,
    cli_purge,
    cli_rekey,
    cli_user,
)
from proxy.app import Tenang
from proxy.bpjs.simulator.serve import add_arguments as add_simulator_arguments
from proxy.bpjs.simulator.serve import config_from_args as simulator_config
from proxy.bpjs.simulator.serve import serve as serve_simulator
from proxy.cli_config import config_arg
from proxy.config import Config, ConfigError, load_config, settable_keys
from proxy.config_routes import unmatched_routes
from proxy.intake.credentials import unsigned_warnings
from proxy.loop import run
from proxy.observe.logs import setup_logging
from proxy.ops.export_manifest import tenang_version
from proxy.preflight import StartupError, check_keyring, check_store, no_users_hint, store_note
from proxy.store.errors import StoreError
from proxy.store.sealing import SealingError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _env_epilog() -> str:
    """serve reads only the environment variables its config file names: list the keys
    (from the config schema itself, so the list cannot go stale)."""
    keys = sorted(k for k in settable_keys() if k.endswith("_env"))
    lines = "\n".join(f"  {k}" for k in keys)
    return ("environment: serve reads the environment variables that these config keys "
            "name\n(the secrets never go in the file); admin.token_env defaults to "
            f"TENANG_ADMIN_TOKEN, which must be set:\n{lines}")


async def _serve(config: Config, config_path: Path) -> None:
    tenang = Tenang(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await tenang.start()
    # Everything loaded at start-up lives for the whole run: keep it out of the cyclic
    # collector's scans, which otherwise cost every request (measured: ~6 % CPU).
    gc.freeze()
    print(f"tenang: ready on {tenang.gateway_url} (admin {tenang.admin_url})", flush=True)
    if await tenang.backend.accounts.count_users() == 0:
        print(no_users_hint(config_path), flush=True)
    await stop.wait()
    print("tenang: stopping (finishing in-flight deliveries)", flush=True)
    await tenang.stop()


def _serve_command(config_path: Path) -> int:
    config = load_config(config_path)
    check_store(config)
    db = config.store.location
    print(f"tenang: database {db}", flush=True)
    try:
        run(_serve(config, config_path))
    except SealingError as exc:  # the keyring does not fit: no retry helps
        print(f"tenang: cannot open the database {db}: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"tenang: cannot open the database {db}: {exc.reason}", file=sys.stderr)
        return 1
    return 0


def _check_config_command(config_path: Path) -> int:
    cfg = load_config(config_path)
    check_store(cfg)
    note = store_note(cfg.store)  # before "OK": it may find the database unreachable
    sealing = check_keyring(cfg.store)
    names = ", ".join(f"{u.name} ({u.prefix} -> {u.target})" for u in cfg.upstreams)
    print(f"{config_path}: OK; upstreams: {names}")
    print(f"database: {cfg.store.location}{note}")
    print(sealing)
    if not cfg.admin.token:
        print(f"note: {cfg.admin.token_env} is not set; `serve` will refuse to start")
    for i, up in enumerate(cfg.upstreams):
        for note in unmatched_routes(up.preset, up.routes, f"upstreams[{i}]"):
            print(f"note: {note}")
    for warning in unsigned_warnings(cfg):
        print(f"warning: {warning}")
    if not cfg.audit.chain:
        print("warning: audit.chain = false: the hash chain is off; nothing stored while "
              "it is off can be verified (`tenang audit verify` exits 3)")
    return 0


def _log_level(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=default,
                        help="log detail (default INFO)")


def _common() -> argparse.ArgumentParser:
    """Options every command takes, so they work before or after the command name. After
    it they must not reset what was given before it: hence no default here (the main
    parser's own --log-level holds it)."""
    common = argparse.ArgumentParser(add_help=False)
    _log_level(common, argparse.SUPPRESS)
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(prog="tenang", description="Durable BPJS proxy for SIMRS.")
    _log_level(p, "INFO")
    p.add_argument("--version", action="version", version=f"tenang {tenang_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the proxy", parents=[common],
                           epilog=_env_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    config_arg(serve)
    config_arg(sub.add_parser("check-config", parents=[common],
                              help="validate a config file and its data directory, and exit"))
    demo = sub.add_parser("demo", help="run Tenang against the BPJS simulator (flaky)",
                          parents=[common])
    demo.add_argument("--dir", type=Path, default=None,
                      help="where the demo writes its config and database; must not hold "
                           "an earlier demo's database (default: a new temporary directory "
                           "per run)")
    demo.add_argument("--port", type=int, default=8080,
                      help="SIMRS-facing port (default 8080; 0: any free port)")
    demo.add_argument("--admin-port", type=int, default=8081,
                      help="admin UI and API port (default 8081; 0: any free port)")
    demo.add_argument("--fail-rate", type=float, default=0.3,
                      help="share of calls the simulated BPJS fails (default 0.3)")
    demo.add_argument("--duration", type=float, default=None,
                      help="stop after this many seconds (default: run until Ctrl-C)")
    simulator = sub.add_parser("simulate-bpjs", parents=[common],
                               help="run the BPJS simulator (VClaim, Antrean, Aplicare, iCare)")
    add_simulator_arguments(simulator)
    cli_user.add_arguments(sub, common)
    cli_migrate.add_arguments(sub, common)
    cli_migrate_store.add_arguments(sub, common)
    cli_export.add_arguments(sub, common)
    cli_purge.add_arguments(sub, common)
    cli_rekey.add_arguments(sub, common)
    cli_audit.add_arguments(sub, common)
    return p


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        return _check_config_command(args.config)
    if args.command == "serve":
        return _serve_command(args.config)
    if args.command == "demo":
        from proxy.demo import demo_dir, run_demo

        run(run_demo(demo_dir(args.dir), args.port, args.admin_port, args.duration,
                     args.fail_rate))
    elif args.command == "user":
        return cli_user.main(args)
    elif args.command == "migrate":
        return cli_migrate.main(args)
    elif args.command == "migrate-store":
        return cli_migrate_store.main(args)
    elif args.command == "export":
        return cli_export.export_main(args)
    elif args.command == "audit":
        return cli_audit.main(args)
    elif args.command == "purge":
        return cli_purge.main(args)
    elif args.command == "rekey":
        return cli_rekey.main(args)
    elif args.command == "simulate-bpjs":
        sim_config, sim_host, sim_port = simulator_config(args)
        run(serve_simulator(sim_config, sim_host, sim_port))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"tenang: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"tenang: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"tenang: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
