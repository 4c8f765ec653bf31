"""`tenang serve` on a PostgreSQL store, as an operator runs it: a subprocess accepts a
signed Antrean add over HTTP, delivers it to the BPJS simulator, stops on SIGTERM and
starts again on the same database (schema already there), where the request is still
succeeded and a new one is delivered too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import booking
from tests.conftest import admin_headers, wait_until
from tests.integration.test_crash import TenangProcess, free_port, wait_healthy
from tests.integration.test_crash import write_config as crash_config
from tests.pg_support import fresh_schema
from tests.signing import bpjs_headers


def on_postgres(config: Path, url: str) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('url = "sqlite:///./tenang.db"', f'url = "{url}"'),
                      encoding="utf-8")


async def add(http: aiohttp.ClientSession, gateway: str, kode: str) -> str:
    async with http.post(f"{gateway}/antreanrs/antrean/add", json=booking(kode),
                         headers={**bpjs_headers(), "user_key": "test"}) as r:
        assert r.status == 202, await r.text()
        return r.headers["X-Tenang-Request-Id"]


async def status(http: aiohttp.ClientSession, admin: str, request_id: str) -> str:
    async with http.get(f"{admin}/api/v1/requests/{request_id}",
                        headers=admin_headers()) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["status"])


async def test_serve_on_postgresql_accepts_delivers_and_restarts_cleanly(
        tmp_path: Path, bpjs_sim: RunningSimulator) -> None:
    port, admin_port = free_port(), free_port()
    gateway, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    async with fresh_schema() as url, aiohttp.ClientSession() as http:
        config = crash_config(tmp_path, bpjs_sim.url, port, admin_port)
        on_postgres(config, url)
        tenang = TenangProcess(config, tmp_path / "tenang.log")
        try:
            for run, kode in enumerate(("PG-1", "PG-2")):
                tenang.start()
                await wait_healthy(http, tenang, admin)
                request_id = await add(http, gateway, kode)

                async def delivered(rid: str = request_id) -> bool:
                    return await status(http, admin, rid) == "succeeded"

                await wait_until(delivered, what=f"delivery of {kode} (run {run + 1})")
                assert tenang.proc is not None
                tenang.proc.terminate()
                assert await asyncio.to_thread(tenang.proc.wait, 30) == 0, tenang.tail()
            log = tenang.log.read_text()
            assert log.count(f"tenang: database {url}") == 2, log
            assert "Traceback" not in log, log
            assert [e["path"].rsplit("/", 1)[-1] for e in bpjs_sim.state.log] == ["add", "add"]
        finally:
            tenang.kill()
