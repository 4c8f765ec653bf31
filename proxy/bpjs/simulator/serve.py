"""``tenang simulate-bpjs``: command-line arguments and the server loop."""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from proxy.bpjs.simulator.app import create_simulator_app
from proxy.bpjs.simulator.settings import (
    DOWN_STYLES,
    FLAKY_STYLES,
    MODES,
    SimConfig,
    slow_alias,
)
from proxy.bpjs.simulator.state import SimulatorState
from proxy.config import HostPort
from proxy.preflight import listen_error


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:9090", help="host:port (port 0: any)")
    p.add_argument("--cons-id", required=True, help="the consumer id callers must sign with")
    p.add_argument("--secret", required=True, help="the consumer secret (signing, encryption)")
    p.add_argument("--mode", choices=MODES, default="up", help="starting mode")
    p.add_argument("--latency-ms", type=float, default=None,
                   help="wait before every answer in up and flaky mode (default 0); "
                        "with --mode slow, the slow wait")
    p.add_argument("--slow-latency-ms", type=float, default=None,
                   help="wait before every answer in slow mode (default 2000)")
    p.add_argument("--error-rate", type=float, default=0.3,
                   help="share of requests flaky mode fails (0..1)")
    p.add_argument("--down-style", choices=DOWN_STYLES, default="mixed",
                   help="how down mode fails: HTML 5xx, resets, timeouts or a mix")
    p.add_argument("--flaky-style", choices=FLAKY_STYLES, default="mixed",
                   help="how flaky mode fails the calls it picks (default: a mix)")
    p.add_argument("--timeout-hang-s", type=float, default=60.0,
                   help="how long a simulated timeout holds the connection")
    p.add_argument("--max-skew-s", type=float, default=None,
                   help="refuse X-timestamp further than this from the simulator clock")
    p.add_argument("--seed", type=int, default=0, help="seed for flaky/down draws")
    p.add_argument("--icare-throttle-s", type=float, default=0.0,
                   help="iCare answers 412 to a validate within this window of the last")
    p.add_argument("--aplicare-autocreate", action="store_true",
                   help="bed/update creates unknown rooms instead of refusing")


def config_from_args(args: argparse.Namespace) -> tuple[SimConfig, str, int]:
    """The simulator config and listen address; bad values raise ValueError."""
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be host:port, not {args.listen!r}")
    latency = {k: v for k, v in (("latency_ms", args.latency_ms),
                                 ("slow_latency_ms", args.slow_latency_ms)) if v is not None}
    # the same reading as POST /_sim/mode: `--mode slow --latency-ms N` waits N
    timing = {k: v for k, v in slow_alias({"mode": args.mode, **latency}).items()
              if k != "mode"}
    config = SimConfig(
        cons_id=args.cons_id, secret=args.secret, mode=args.mode, **timing,
        error_rate=args.error_rate, down_style=args.down_style,
        flaky_style=args.flaky_style, timeout_hang_s=args.timeout_hang_s,
        max_skew_s=args.max_skew_s, seed=args.seed, icare_throttle_s=args.icare_throttle_s,
        aplicare_autocreate=args.aplicare_autocreate)
    return config, host, int(port)


async def serve(config: SimConfig, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM, then release held requests and close."""
    # The simulator's own request log is /_sim/log; aiohttp's access log would repeat it.
    runner = web.AppRunner(create_simulator_app(SimulatorState(config)), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise listen_error(exc, HostPort(host, port), "--listen") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = runner.addresses[0][1] if runner.addresses else port
    print(f"BPJS simulator on http://{host}:{bound} (mode {config.mode}; control API "
          f"/_sim/mode, /_sim/faults, /_sim/log, /_sim/state, /_sim/reset)", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
