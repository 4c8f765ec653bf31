"""`tenang demo`: Tenang on the embedded SQLite default in front of the BPJS simulator in
flaky mode, with a small signing SIMRS sending Antrean bookings and task times, and a
short outage now and then, so a newcomer sees requests queue, retry and succeed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from proxy.bpjs.simulator import SimConfig
from proxy.bpjs.simulator.client import signed_headers
from proxy.bpjs.simulator.harness import RunningSimulator, start_simulator
from proxy.config import load_config
from proxy.ops.auth import hash_password

SECRET_ENV = "TENANG_DEMO_BPJS_SECRET"
CONS_ID = "29999"
OUTAGE_EVERY_S = 45.0
OUTAGE_FOR_S = 12.0
DB_NAME = "tenang-demo.db"

DEMO_CONFIG = """\
# Written by `tenang demo`. Every key is explained in config.example.toml.
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"

[store]
url = "sqlite:///./{db_name}"

[admin]
token_env = "TENANG_ADMIN_TOKEN"

[[admin.users]]
name = "demo"
role = "admin"
password_hash = "{password_hash}"

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "{sim}/antreanrs"
preset = "antrean"
cons_id = "{cons_id}"
secret_env = "{secret_env}"
timeout_s = 5

[upstreams.retry]
max_attempts = 8
initial_delay_s = 1
max_delay_s = 10

[upstreams.breaker]
fail_max = 4
reset_timeout_s = 5
"""


def _today_ms(minutes: int) -> int:
    """Epoch ms of a time on today's service day: task times BPJS accepts today."""
    start = datetime.now(WIB).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(start.timestamp() * 1000) + minutes * 60_000


def _booking(code: str) -> dict[str, object]:
    return {"kodebooking": code, "jenispasien": "JKN", "nomorkartu": "0001234567890",
            "nik": "3201012345678901", "nohp": "081234567890", "kodepoli": "INT",
            "namapoli": "PENYAKIT DALAM", "pasienbaru": 0, "norm": "123456",
            "tanggalperiksa": datetime.now(WIB).date().isoformat(), "kodedokter": 31537,
            "namadokter": "dr. Andi", "jampraktek": "08:00-12:00", "jeniskunjungan": 1,
            "nomorreferensi": "0138U0200326P000123", "nomorantrean": "A-1",
            "angkaantrean": 1, "estimasidilayani": _today_ms(9 * 60), "sisakuotajkn": 5,
            "kuotajkn": 30, "sisakuotanonjkn": 5, "kuotanonjkn": 30, "keterangan": ""}


async def _simrs(base: str, sim: RunningSimulator, stop: asyncio.Event) -> None:
    """A front desk: a booking, then its task times 3, 4 and 5, every few seconds."""
    async with aiohttp.ClientSession() as http:
        for n in itertools.count(1):
            code = f"DEMO{int(time.time())}{n:03d}"
            minute = min(n, 600)
            calls = [("antrean/add", _booking(code))] + [
                ("antrean/updatewaktu", {"kodebooking": code, "taskid": task,
                                         "waktu": _today_ms(minute + task)})
                for task in (3, 4, 5)]
            for path, body in calls:
                headers = signed_headers(sim.cons_id, sim.secret, "antrean", method="POST")
                async with http.post(f"{base}/antreanrs/{path}", data=json.dumps(body),
                                     headers=headers) as resp:
                    answer = await resp.json(content_type=None)
                # Whole: the queued answer's message ends with the request's id.
                print(f"SIMRS   {path:<20} {code}: HTTP {resp.status} "
                      f"{json.dumps(answer['metadata'])}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 3.0)
            if stop.is_set():
                return


async def _outages(sim: RunningSimulator, error_rate: float, stop: asyncio.Event) -> None:
    """BPJS goes down for a while now and then: the breaker opens, the queue grows,
    and after recovery the backlog drains at the configured pace."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), OUTAGE_EVERY_S)
        if stop.is_set():
            return
        print(f"BPJS    simulated outage for {OUTAGE_FOR_S:g} s", flush=True)
        await sim.set_mode("down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), OUTAGE_FOR_S)
        await sim.set_mode("flaky", error_rate=error_rate)
        print("BPJS    back (flaky)", flush=True)


async def _report(tenang: Tenang, token: str, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
            async with http.get(f"{tenang.admin_url}/api/v1/summary") as resp:
                up = (await resp.json())["upstreams"]["antrean"]
            counts = {k: v for k, v in up["counts"].items() if v}
            print(f"TENANG  queue {counts}  breaker={up['breaker']['state']}", flush=True)


def _banner(tenang: Tenang, sim: RunningSimulator, fail_rate: float, password: str,
            token: str, workdir: Path) -> None:
    print(f"""
Tenang demo is running (Ctrl-C to stop).
  SIMRS-facing URL : {tenang.gateway_url}/antreanrs/...
  BPJS simulator   : {sim.url} (flaky: fails {fail_rate:.0%} of calls; an outage every
                     {OUTAGE_EVERY_S:g} s; its log: {sim.url}/_sim/log)
  admin UI         : {tenang.admin_url}/  (user demo, password {password})
  admin API        : {tenang.admin_url}/api/v1/summary
  admin token      : {token}
  try              : curl -H 'Authorization: Bearer {token}' {tenang.admin_url}/api/v1/summary
  config and data  : {workdir} (fresh for this run, kept afterwards)
  database         : {tenang.config.store.sqlite_path}
""", flush=True)


def demo_dir(requested: Path | None) -> Path:
    """A fresh directory for this run's config and database. The simulator starts empty
    every time, so a database from an earlier run would hold bookings it never saw (they
    end dead) and add up the counts: a given ``--dir`` must not hold one."""
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="tenang-demo-"))
    workdir = requested.resolve()
    if (workdir / DB_NAME).exists():
        raise ValueError(f"--dir {workdir} holds an earlier demo's database; pick another "
                         "directory (or leave --dir out for a new temporary one)")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


async def run_demo(workdir: Path, port: int, admin_port: int, duration_s: float | None,
                   fail_rate: float) -> None:
    secret = secrets.token_urlsafe(16)
    sim = await start_simulator(SimConfig(cons_id=CONS_ID, secret=secret, mode="flaky",
                                          error_rate=fail_rate, seed=int(time.time())))
    try:
        await _run(sim, workdir, port, admin_port, duration_s, fail_rate)
    finally:
        await sim.close()


async def _run(sim: RunningSimulator, workdir: Path, port: int, admin_port: int,
               duration_s: float | None, fail_rate: float) -> None:
    secret = sim.secret
    config_path = workdir / "tenang-demo.toml"
    password = secrets.token_urlsafe(9)
    text = DEMO_CONFIG.format(port=port, admin_port=admin_port, sim=sim.url,
                              cons_id=CONS_ID, secret_env=SECRET_ENV, db_name=DB_NAME,
                              password_hash=hash_password(password))
    await asyncio.to_thread(config_path.write_text, text)
    token = secrets.token_urlsafe(24)
    tenang = Tenang(load_config(config_path, {"TENANG_ADMIN_TOKEN": token,
                                              SECRET_ENV: secret}))
    await tenang.start()
    _banner(tenang, sim, fail_rate, password, token, workdir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    tasks = [asyncio.create_task(_simrs(tenang.gateway_url, sim, stop)),
             asyncio.create_task(_outages(sim, fail_rate, stop)),
             asyncio.create_task(_report(tenang, token, stop))]
    try:
        await stop.wait()
        print("TENANG  stopping (finishing in-flight deliveries)", flush=True)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await tenang.stop()
        print(f"TENANG  stopped; this run's config and database stay in {workdir}",
              flush=True)
