"""CPU time per accepted request of Tenang's server process, for one or more checkouts,
measured in alternating runs on the same machine (throughput drifts here; CPU per
request is the steadier figure). Each checkout needs its own ``.venv``-free import path:
it is run as ``python -m proxy serve`` with that checkout as the working directory.

    python bench/cpu_per_request.py /path/to/old-checkout /path/to/new-checkout [--hello]

``--hello`` adds intake_bench's aiohttp hello-world to the alternating runs, under the same
load, as the floor to compare against. A checkout written ``PATH:sealed`` runs with
encryption at rest on (``[store] encryption_key_env``, a fresh key per run): ``. .:sealed``
compares one checkout with and without it. ``PATH:nochain`` runs it with the hash chain
off (``[audit] chain = false``; checkouts before that setting refuse it): ``. .:nochain``
is what the chain costs. Suffixes combine (``.:sealed:nochain``).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake_bench import (
    ADMIN_TOKEN,
    PATH,
    SECRET,
    SECRET_ENV,
    free_port,
    process_cpu_s,
    stop,
    tenang_config,
    wait_http,
    write_script,
)

HELLO = Path("hello-world")  # stands for the baseline among the checkouts


def hello_run(duration_s: int) -> float:
    """The same wrk load against intake_bench's plain aiohttp hello-world."""
    with tempfile.TemporaryDirectory(prefix="tenang-cpu-") as tmp:
        script = Path(tmp) / "post.lua"
        port = free_port()
        server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "intake_bench.py"),
                                   "--serve-hello", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/", server)
            write_script(script)
            return _measure(server.pid, script, f"http://127.0.0.1:{port}{PATH}", duration_s,
                            HELLO)
        finally:
            stop(server)


# Throughput (wrk's Requests/sec) of each run, beside its CPU per request.
RATES: dict[Path, list[float]] = {}


def _measure(pid: int, script: Path, url: str, duration_s: int, label: Path) -> float:
    before = process_cpu_s(pid)
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{duration_s}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    after = process_cpu_s(pid)
    if "Non-2xx" in out:  # e.g. 401s: the figure would be the cost of a refusal
        raise SystemExit(f"{label}: not every request was accepted:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    RATES.setdefault(label, []).append(rate)
    return (after - before) / requests * 1e6


SEALED = ":sealed"
NO_CHAIN = ":nochain"
KEYS_ENV = "TENANG_BENCH_KEYS"


def _options(target: Path) -> tuple[Path, bool, bool]:
    """A target's checkout, and whether it runs sealed and with the chain on."""
    name, sealed, chain = str(target), False, True
    while name.endswith((SEALED, NO_CHAIN)):
        if name.endswith(SEALED):
            name, sealed = name.removesuffix(SEALED), True
        else:
            name, chain = name.removesuffix(NO_CHAIN), False
    return Path(name).resolve(), sealed, chain


def one_run(target: Path, duration_s: int, preset: str) -> float:
    checkout, sealed, chain = _options(target)
    with tempfile.TemporaryDirectory(prefix="tenang-cpu-") as tmp:
        work = Path(tmp)
        script = work / "post.lua"
        port, admin_port, up_port = (free_port() for _ in range(3))
        config = tenang_config(work, port, admin_port, up_port, preset, chain=chain)
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, SECRET_ENV: SECRET,
               "PYTHONPATH": str(checkout)}
        if sealed:
            config.write_text(config.read_text().replace(
                "[store]\n", f'[store]\nencryption_key_env = "{KEYS_ENV}"\n', 1))
            env[KEYS_ENV] = "bench:" + base64.b64encode(os.urandom(32)).decode()
        server = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config",
                                   str(config)], cwd=checkout, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{admin_port}/healthz", server)
            write_script(script)  # signed now, valid for the run
            return _measure(server.pid, script, f"http://127.0.0.1:{port}{PATH}",
                            duration_s, target)
        finally:
            stop(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--preset", default="antrean",
                        help="upstream preset (generic: no BPJS endpoint rules)")
    parser.add_argument("--hello", action="store_true",
                        help="also measure the aiohttp hello-world, in the same rotation")
    args = parser.parse_args()
    targets = [*args.checkouts, *([HELLO] if args.hello else [])]
    results: dict[Path, list[float]] = {c: [] for c in targets}
    for _ in range(args.runs):
        for checkout in targets:
            results[checkout].append(
                hello_run(args.duration) if checkout is HELLO
                else one_run(checkout, args.duration, args.preset))
            time.sleep(0.5)  # let the previous server's port and files go
    for checkout, values in results.items():
        rates = RATES.get(checkout, [])
        print(f"{checkout}: median {statistics.median(values):.0f} us CPU per request "
              f"(runs: {', '.join(f'{v:.0f}' for v in values)}); median "
              f"{statistics.median(rates):.0f} req/s (runs: "
              f"{', '.join(f'{r:.0f}' for r in rates)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
