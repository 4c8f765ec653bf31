"""Crash test: SIGKILL `tenang serve` mid-stream, restart it, and prove that every write
answered 202 reaches the upstream exactly once and ends `succeeded`.

The BPJS simulator runs in this process; Tenang runs as a real subprocess so it can be
killed without any chance to clean up. Synchronisation is by polling with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.bpjs.simulator.records import Booking
from tests.bpjs_support import booking, waktu
from tests.conftest import ADMIN_TOKEN, admin_headers, wait_until
from tests.signing import TEST_CONS_ID, TEST_SECRET, TEST_SECRET_ENV, bpjs_headers

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WRITES = 300
KILL_AFTER = WRITES // 2
CLIENT_CONCURRENCY = 32


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_sections(port: int, admin_port: int) -> str:
    """The [server], [store] and [relay] sections of a crash test's config."""
    return f"""\
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"

[store]
url = "sqlite:///./tenang.db"

[relay]
lease_margin_s = 1.0
poll_interval_s = 0.05
shutdown_grace_s = 1.0
"""


def write_config(tmp_path: Path, target: str, port: int, admin_port: int) -> Path:
    path = tmp_path / "tenang.toml"
    path.write_text(serve_sections(port, admin_port) + f"""
[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "{target}/antreanrs"
preset = "antrean"
cons_id = "{TEST_CONS_ID}"
secret_env = "{TEST_SECRET_ENV}"
timeout_s = 1.0

[upstreams.retry]
max_attempts = 20
initial_delay_s = 0.05
max_delay_s = 0.2
jitter = "none"

[upstreams.breaker]
fail_max = 10000
reset_timeout_s = 0.2

[upstreams.rate]
per_second = 100000.0
max_concurrency = 16
""")
    return path


class TenangProcess:
    """`python -m proxy serve` as a subprocess whose output goes to a log file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, TEST_SECRET_ENV: TEST_SECRET}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "proxy", "serve", "--config", str(self.config)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"tenang exited with {self.proc.returncode}:\n{self.tail()}")


async def wait_healthy(http: aiohttp.ClientSession, tenang: TenangProcess, admin: str) -> None:
    async def healthy() -> bool:
        tenang.check_alive()
        try:
            async with http.get(f"{admin}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until(healthy, timeout_s=15, interval_s=0.05, what="tenang /healthz")


def body_for(n: int) -> dict[str, Any]:
    """Task 3 (admission served) of a returning patient's booking made today."""
    return {"kodebooking": f"CRASH-{n:04d}", "taskid": 3, "waktu": waktu(60) + n}


def book_all(sim: RunningSimulator) -> None:
    """The bookings the task updates belong to, already at BPJS (added earlier that day)."""
    for n in range(WRITES):
        kb = body_for(n)["kodebooking"]
        sim.state.records.bookings[kb] = Booking(kb, booking(kb), time.time())


def in_flight_ids(db: Path) -> set[str]:
    """Requests claimed but not finished when the process died (read from the dead
    process's SQLite file, before the restart)."""
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM requests WHERE status='in_flight'")}
    finally:
        conn.close()


async def succeeded_ids(http: aiohttp.ClientSession, admin: str) -> set[str]:
    ids: set[str] = set()
    cursor = ""
    while True:
        url = f"{admin}/api/v1/requests?status=succeeded&limit=500"
        if cursor:
            url += f"&cursor={cursor}"
        async with http.get(url, headers=admin_headers()) as r:
            assert r.status == 200, await r.text()
            page = await r.json()
        ids.update(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return ids


async def test_sigkill_mid_stream_loses_nothing_and_applies_once(
        tmp_path: Path, bpjs_sim: RunningSimulator) -> None:
    started = time.monotonic()
    book_all(bpjs_sim)
    await bpjs_sim.set_mode(latency_ms=20)  # deliveries are in flight when the kill lands
    port, admin_port = free_port(), free_port()
    gateway, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    config = write_config(tmp_path, bpjs_sim.url, port, admin_port)
    tenang = TenangProcess(config, tmp_path / "tenang.log")
    accepted: dict[str, str] = {}  # kodebooking -> X-Tenang-Request-Id, only for 202s
    errors: Counter[str] = Counter()
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            tenang.start()
            await wait_healthy(http, tenang, admin)

            gate = asyncio.Semaphore(CLIENT_CONCURRENCY)

            def upstream_busy() -> bool:
                """A delivery is in the upstream's hands (received, not yet answered)."""
                return any(e["outcome"] == "pending" for e in bpjs_sim.state.log)

            async def write(n: int) -> None:
                doc = body_for(n)
                async with gate:
                    if tenang.proc is not None and tenang.proc.poll() is not None:
                        errors["after kill"] += 1
                        return
                    try:
                        async with http.post(
                                f"{gateway}/antreanrs/antrean/updatewaktu", json=doc,
                                headers={**bpjs_headers(), "user_key": "bench"}) as r:
                            await r.read()
                            if r.status != 202:
                                errors[f"HTTP {r.status}"] += 1
                                return
                            accepted[doc["kodebooking"]] = r.headers["X-Tenang-Request-Id"]
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        errors[type(exc).__name__] += 1
                        return
                if len(accepted) >= KILL_AFTER and upstream_busy():
                    tenang.kill()  # SIGKILL: no shutdown, no cleanup

            await asyncio.gather(*(write(n) for n in range(WRITES)))
            tenang.kill()
            assert KILL_AFTER <= len(accepted) < WRITES, (len(accepted), errors)
            assert not any(k.startswith("HTTP") for k in errors), errors

            interrupted = in_flight_ids(tmp_path / "tenang.db")
            delivered_before = len(bpjs_sim.state.log)

            tenang.start()
            await wait_healthy(http, tenang, admin)

            # Every 202'd request, and every request the kill caught mid-delivery (some of
            # those were stored but their 202 was lost with the connection).
            wanted = set(accepted.values()) | interrupted

            async def all_succeeded() -> bool:
                tenang.check_alive()
                return wanted <= await succeeded_ids(http, admin)

            await wait_until(all_succeeded, timeout_s=30, interval_s=0.1,
                             what="every 202'd and interrupted request to succeed")

            details: dict[str, dict[str, Any]] = {}
            for request_id in interrupted:
                async with http.get(f"{admin}/api/v1/requests/{request_id}",
                                    headers=admin_headers()) as r:
                    details[request_id] = await r.json()
    finally:
        tenang.kill()

    outcomes: dict[str, Counter[str]] = {}
    for entry in bpjs_sim.state.log:
        kb = entry["body"]["kodebooking"]
        outcomes.setdefault(kb, Counter())[entry["outcome"]] += 1

    for kb in accepted:
        seen = outcomes.get(kb, Counter())
        assert seen["ok"] == 1, f"{kb} applied {seen['ok']} times upstream ({dict(seen)})"
        assert 3 in bpjs_sim.state.records.bookings[kb].tasks
        assert set(seen) <= {"ok", "duplicate"}, (kb, dict(seen))

    # A repeat reached the upstream only for a request whose delivery the kill cut short,
    # and each of those recorded the ambiguous attempt as "interrupted" before the re-send.
    resent = {kb for kb, seen in outcomes.items() if seen["duplicate"]}
    interrupted_kb = {json.loads(d["body"])["kodebooking"] for d in details.values()}
    assert resent <= interrupted_kb, (resent - interrupted_kb)
    for request_id, detail in details.items():
        verdicts = [a["outcome"] for a in detail["attempts"]]
        assert "interrupted" in verdicts, (request_id, verdicts)
        assert detail["status"] == "succeeded", (request_id, detail["status"])
        assert verdicts[-1] in ("success", "duplicate"), (request_id, verdicts)
    assert interrupted, "the kill landed with no delivery in flight; nothing was exercised"

    print(f"\ncrash test: {len(accepted)} accepted (202) of {WRITES}, errors {dict(errors)}, "
          f"{delivered_before} upstream receipts before the kill, {len(interrupted)} in "
          f"flight at the kill, {len(resent)} re-sent as duplicates; "
          f"{time.monotonic() - started:.1f} s")


async def test_sigterm_finishes_in_flight_deliveries_and_exits_cleanly(
        tmp_path: Path, bpjs_sim: RunningSimulator) -> None:
    book_all(bpjs_sim)
    await bpjs_sim.set_mode(latency_ms=400)  # within shutdown_grace_s = 1.0 of write_config
    port, admin_port = free_port(), free_port()
    gateway, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    tenang = TenangProcess(write_config(tmp_path, bpjs_sim.url, port, admin_port),
                           tmp_path / "tenang.log")
    try:
        async with aiohttp.ClientSession() as http:
            tenang.start()
            await wait_healthy(http, tenang, admin)
            for n in range(5):
                async with http.post(f"{gateway}/antreanrs/antrean/updatewaktu",
                                     json=body_for(n), headers=bpjs_headers()) as resp:
                    assert resp.status == 202
            await wait_until(lambda: len(bpjs_sim.state.log) == 5,
                             what="all five deliveries in the upstream's hands")
            assert all(e["outcome"] == "pending" for e in bpjs_sim.state.log)  # in flight

            assert tenang.proc is not None
            tenang.proc.terminate()
            code = await asyncio.to_thread(tenang.proc.wait, 10)
        assert code == 0, tenang.tail()
        assert [e["outcome"] for e in bpjs_sim.state.log] == ["ok"] * 5
        with sqlite3.connect(tmp_path / "tenang.db") as db:
            statuses = [s for (s,) in db.execute("SELECT status FROM requests")]
        assert statuses == ["succeeded"] * 5
    finally:
        tenang.kill()
