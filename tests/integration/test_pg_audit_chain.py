"""The hash chain on PostgreSQL (issue 14), run as the commands they are on the database a
real Tenang wrote: requests from SIMRS through intake, delivered to the BPJS simulator
(two refused first, one retried by an operator, one cancelled), 400 days ago by Tenang's
clock, and one delivered today. Then rows are changed behind Tenang's back with asyncpg,
one byte of one body at a time, and `tenang audit verify` must name the record; `tenang
purge` drops the old bodies, then the old rows, and the chain verifies after each."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import asyncpg
import pytest

import proxy.ids
from proxy.bpjs.simulator.harness import RunningSimulator
from tests.cli_support import store_config_file, tenang
from tests.conftest import StartTenang, make_config
from tests.integration.test_purge_chain import BODIES, MARK, ROWS, aged_traffic, verify
from tests.pg_support import schema_now


@pytest.fixture
async def traffic(tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
                  http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[str, dict[str, str]]:
    """A stopped Tenang's PostgreSQL schema after real traffic; its request ids by role."""
    monkeypatch.setattr(proxy.ids, "_last", 0)  # old ids must sort before today's
    url = schema_now()
    config = make_config(tmp_path, bpjs_sim.url, max_skew_s=0.0,
                         store={"url": url, "pool_min": 1, "pool_max": 4})
    ids = await aged_traffic(http, bpjs_sim, start_tenang, config, "KB-PG")
    return url, ids


async def fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def flip_one_byte_of_body(url: str, request_id: str) -> None:
    """One byte of the request's stored body changed in its row, as psql could."""
    [row] = await fetch(url, "SELECT body FROM requests WHERE id = $1", request_id)
    body = bytes(row["body"])
    at = body.index(MARK.encode()) if MARK.encode() in body else 10
    changed = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1:]
    await fetch(url, "UPDATE requests SET body = $2 WHERE id = $1", request_id, changed)


async def test_an_untouched_store_verifies_and_a_checkpoint_records_its_head(
        traffic: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, _ = traffic
    kinds = {r["kind"]: r["n"] for r in await fetch(
        url, "SELECT kind, count(*) AS n FROM chain GROUP BY kind")}
    assert kinds["request"] == 4 and kinds["attempt"] == 5  # 2 refused, 3 delivered
    assert kinds["audit"] >= 2 and kinds["state"] >= 2 * 4 + 2
    [last] = await fetch(url, "SELECT seq, head FROM chain ORDER BY seq DESC LIMIT 1")
    config = store_config_file(tmp_path, url)

    assert f"to seq {last['seq']}" in verify(config)
    taken = tenang("audit", "checkpoint", "--config", str(config), "--note", "daily")
    assert taken.returncode == 0, taken.stderr
    point = json.loads(taken.stdout)
    assert (point["head"], point["seq"]) == (bytes(last["head"]).hex(), last["seq"])
    since = tenang("audit", "verify", "--config", str(config), "--from-checkpoint",
                   point["head"])
    assert since.returncode == 0 and f"from checkpoint seq {last['seq']}" in since.stdout


async def test_one_byte_of_one_stored_body_changed_in_its_row_is_named(
        traffic: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, ids = traffic
    await flip_one_byte_of_body(url, ids["delivered"])
    result = tenang("audit", "verify", "--config", str(store_config_file(tmp_path, url)))
    assert result.returncode == 1, result.stdout
    assert f"request {ids['delivered']}" in result.stderr and "changed" in result.stderr


async def test_a_purged_store_verifies_after_its_bodies_and_after_its_rows_go(
        traffic: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, ids = traffic
    old = {ids["retried"], ids["cancelled"], ids["delivered"]}
    bodies = store_config_file(tmp_path, url, BODIES, "bodies.toml")
    result = tenang("purge", "--config", str(bodies))
    assert result.returncode == 0 and "purged bodies of 3 requests" in result.stdout, result
    marked = await fetch(url, "SELECT kind, ref FROM chain WHERE purged_at IS NOT NULL")
    assert {r["ref"] for r in marked if r["kind"] == "request"} == old
    assert sum(r["kind"] == "attempt" for r in marked) == 4  # 2 refused + 2 delivered
    verify(store_config_file(tmp_path, url))

    rows = store_config_file(tmp_path, url, ROWS, "rows.toml")
    result = tenang("purge", "--config", str(rows))
    assert result.returncode == 0 and "purged whole rows of 3" in result.stdout, result
    assert [r["id"] for r in await fetch(url, "SELECT id FROM requests")] == [ids["today"]]
    verify(store_config_file(tmp_path, url))

    # The body that remains, one byte of it changed in its row: named.
    await flip_one_byte_of_body(url, ids["today"])
    result = tenang("audit", "verify", "--config", str(store_config_file(tmp_path, url)))
    assert result.returncode == 1
    assert f"request {ids['today']}" in result.stderr and "changed" in result.stderr
