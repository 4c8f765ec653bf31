"""`tenang demo`: Tenang on the embedded SQLite default in front of a flaky stand-in
upstream, with a small SIMRS stand-in sending Antrean writes, so a newcomer sees
requests queue, retry and succeed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy.app import Tenang
from proxy.config import load_config
from proxy.standin import StandinState, create_standin_app

DEMO_CONFIG = """\
# Written by `tenang demo`. Every key is explained in config.example.toml.
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"

[store]
url = "sqlite:///./tenang-demo.db"

[admin]
token_env = "TENANG_ADMIN_TOKEN"

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "{target}"
preset = "antrean"
timeout_s = 5

[upstreams.retry]
max_attempts = 8
initial_delay_s = 1
max_delay_s = 10

[upstreams.breaker]
fail_max = 4
reset_timeout_s = 5
"""


async def _simrs(base: str, stop: asyncio.Event) -> None:
    """Sends a booking and its task times every couple of seconds, like a front desk."""
    async with aiohttp.ClientSession() as http:
        for n in itertools.count(1):
            booking = f"DEMO{int(time.time())}{n:04d}"
            body = {"kodebooking": booking, "taskid": 3, "waktu": int(time.time() * 1000)}
            async with http.post(f"{base}/antreanrs/antrean/updatewaktu", json=body,
                                 headers={"user_key": "demo-user-key-0001"}) as resp:
                answer = await resp.json(content_type=None)
                print(f"SIMRS  -> {booking}: HTTP {resp.status} {json.dumps(answer)[:90]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
            if stop.is_set():
                return


async def _report(tenang: Tenang, token: str, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
            async with http.get(f"{tenang.admin_url}/api/v1/summary") as resp:
                up = (await resp.json())["upstreams"]["antrean"]
            counts = {k: v for k, v in up["counts"].items() if v}
            print(f"TENANG  queue {counts}  breaker={up['breaker']['state']}")


async def run_demo(workdir: Path, port: int, admin_port: int, duration_s: float | None,
                   fail_rate: float) -> None:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    state = StandinState(mode="flaky", fail_rate=fail_rate)
    runner = web.AppRunner(create_standin_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target = "http://{}:{}/antreanrs".format(*runner.addresses[0][:2])
    config_path = workdir / "tenang-demo.toml"
    text = DEMO_CONFIG.format(port=port, admin_port=admin_port, target=target)
    await asyncio.to_thread(config_path.write_text, text)
    token = secrets.token_urlsafe(24)
    tenang = Tenang(load_config(config_path, {"TENANG_ADMIN_TOKEN": token}))
    await tenang.start()
    print(f"""
Tenang demo is running (Ctrl-C to stop).
  SIMRS-facing URL : {tenang.gateway_url}/antreanrs/...
  stand-in BPJS    : {target} (fails {fail_rate:.0%} of calls)
  admin API        : {tenang.admin_url}/api/v1/summary
  admin token      : {token}
  try              : curl -H 'Authorization: Bearer {token}' {tenang.admin_url}/api/v1/summary
  config and data  : {workdir}
""", flush=True)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_simrs(tenang.gateway_url, stop)),
             asyncio.create_task(_report(tenang, token, stop))]
    try:
        if duration_s is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration_s)  # the demo's own run time, not synchronisation
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await tenang.stop()
        await runner.cleanup()
