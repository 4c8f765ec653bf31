"""kill -9 in the middle of a reconciliation read: `tenang serve` runs as a real
subprocess against the in-process BPJS simulator; it is killed while reading the
service history of a SEP insert whose send got no answer (after a first read met a 503),
restarted, and must settle the insert by reading, never by sending it again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.conftest import admin_headers, wait_until
from tests.integration.test_crash import (
    TenangProcess,
    free_port,
    serve_sections,
    wait_healthy,
)
from tests.integration.test_modes import SEP_INSERT, t_sep
from tests.signing import TEST_SECRET, TEST_SECRET_ENV

pytestmark = pytest.mark.slow

HISTORY = "HistoriPelayanan"


def write_config(tmp_path: Path, sim: RunningSimulator, port: int, admin_port: int) -> Path:
    path = tmp_path / "tenang.toml"
    path.write_text(serve_sections(port, admin_port) + f"""
[[upstreams]]
name = "vclaim"
prefix = "/vclaim-rest"
target = "{sim.url}/vclaim-rest"
preset = "vclaim"
cons_id = "{sim.cons_id}"
secret_env = "{TEST_SECRET_ENV}"
timeout_s = 3.0

[upstreams.retry]
initial_delay_s = 0.05
max_delay_s = 0.2
jitter = "none"
""")
    return path


def stored_row(db: Path, request_id: str) -> tuple[str, int | None]:
    conn = sqlite3.connect(db)
    try:
        status, reads = conn.execute("SELECT status, reconcile_reads FROM requests WHERE id=?",
                                     (request_id,)).fetchone()
        return str(status), reads
    finally:
        conn.close()


async def test_kill_9_mid_reconciliation_read_never_resends_the_sep_insert(
        tmp_path: Path, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_SECRET_ENV, TEST_SECRET)
    port, admin_port = free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    tenang = TenangProcess(write_config(tmp_path, bpjs_sim, port, admin_port),
                           tmp_path / "tenang.log")
    await bpjs_sim.fault("SEP/2.0/insert", "reset-after-apply")  # made, no answer
    await bpjs_sim.fault(HISTORY, "html-503")  # the first read fails ...
    await bpjs_sim.fault(HISTORY, "timeout")  # ... the second hangs: kill -9 then
    tenang.start()
    try:
        await wait_healthy(http, tenang, admin)
        async with http.post(f"http://127.0.0.1:{port}{SEP_INSERT}", json=t_sep("0001112223350"),
                             headers=bpjs_sim.signed_headers("vclaim", method="POST")) as r:
            assert r.status == 202, await r.text()
            request_id = r.headers["X-Tenang-Request-Id"]

        async def reads(n: int) -> bool:
            return len(await bpjs_sim.log(HISTORY)) >= n

        await wait_until(lambda: reads(2), timeout_s=15, what="the second history read")
        tenang.kill()
        # Killed mid-read: leased, in its reading phase, one failed read behind it.
        assert stored_row(tmp_path / "tenang.db", request_id) == ("in_flight", 1)

        tenang.start()
        await wait_healthy(http, tenang, admin)
        doc: dict[str, Any] = {}

        async def settled() -> bool:
            async with http.get(f"{admin}/api/v1/requests/{request_id}",
                                headers=admin_headers()) as resp:
                doc.update(await resp.json())
            return doc["status"] not in ("pending", "in_flight")

        await wait_until(settled, timeout_s=20, what="the SEP insert to settle")
    finally:
        tenang.kill()
    assert doc["status"] == "succeeded", doc["reason"]
    assert "found by reconciliation" in doc["reason"]
    assert len(await bpjs_sim.log("SEP/2.0/insert")) == 1  # never sent again
    assert len((await bpjs_sim.snapshot())["seps"]) == 1
    sep = json.loads(doc["last_response"])["response"]["sep"]["noSep"]
    assert sep in json.dumps((await bpjs_sim.snapshot())["seps"])
