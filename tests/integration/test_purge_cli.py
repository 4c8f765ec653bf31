"""`tenang purge` as a command, on a real SQLite file: a dry run counts and changes
nothing, a run purges old final requests (bodies, then rows) and nothing else, with
Tenang stopped or serving on the same database."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition
from proxy.ops.retention import DAY_S
from proxy.store.backend import Backend
from proxy.store.records import NewRequest
from proxy.store.sqlite import sqlite_backend
from tests.bpjs_support import booking
from tests.conftest import StartTenang, admin_headers, make_config, wait_until
from tests.store_support import enqueue

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "tenang.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'tenang.db'}"

[retention]
bodies_after_days = 30
rows_after_days = 365

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "https://example.test/antreanrs"
""", encoding="utf-8")
    return path


def with_busy_timeout(config: Path, ms: int) -> Path:
    text = config.read_text().replace("[store]\n", f"[store]\nbusy_timeout_ms = {ms}\n")
    config.write_text(text, encoding="utf-8")
    return config


def purge_command(config: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "proxy", "purge", "--config", str(config), *flags]


def purge(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(purge_command(config, *flags), cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60, check=False)


async def stored(store: Backend, age_days: float, status: Status, n: int) -> str:
    """A request received and settled ``age_days`` ago (``n`` keeps their times apart);
    it starts in flight, as a deadline-mode request does."""
    at = time.time() - age_days * DAY_S + n / 1000
    request_id = new_request_id(at)
    await enqueue(store.intake, NewRequest(
        id=request_id, upstream="antrean", method="POST", path=f"/antreanrs/antrean/add/{n}",
        query="", headers=(), body=b'{"nik":"3201"}', received_at=at, lease_owner="w",
        lease_expires_at=at + 60))
    if status is not Status.IN_FLIGHT:
        await store.queue.complete_attempt(request_id, "w", None, Transition(status, "done"),
                                           at)
    return request_id


async def seed(db: Path) -> dict[str, str]:
    store = sqlite_backend(db)
    await store.open()
    try:
        return {
            "ancient": await stored(store, 400, Status.SUCCEEDED, 1),
            "ancient_held": await stored(store, 400, Status.HELD, 2),
            "ancient_in_flight": await stored(store, 400, Status.IN_FLIGHT, 3),
            "month_old": await stored(store, 40, Status.DEAD, 4),
            "fresh": await stored(store, 1, Status.SUCCEEDED, 5),
        }
    finally:
        await store.close()


async def bodies(db: Path, ids: dict[str, str]) -> dict[str, bytes | None]:
    """Each seeded request's body as stored now (None: the row is gone)."""
    store = sqlite_backend(db)
    await store.open()
    try:
        rows = {name: await store.log.get(i) for name, i in ids.items()}
        return {name: None if r is None else r.body for name, r in rows.items()}
    finally:
        await store.close()


async def test_a_dry_run_counts_and_a_run_purges_only_old_final_requests(
        tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids = await seed(tmp_path / "tenang.db")
    before = await bodies(tmp_path / "tenang.db", ids)

    dry = purge(config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing changed" in dry.stdout
    assert "bodies: would purge bodies of 2 requests" in dry.stdout
    assert "rows: would purge whole rows of 1 requests" in dry.stdout
    assert await bodies(tmp_path / "tenang.db", ids) == before

    done = purge(config)
    assert done.returncode == 0, done.stderr
    assert "bodies: purged bodies of 2 requests" in done.stdout
    assert "rows: purged whole rows of 1 requests" in done.stdout
    assert await bodies(tmp_path / "tenang.db", ids) == {
        "ancient": None, "ancient_held": b'{"nik":"3201"}',
        "ancient_in_flight": b'{"nik":"3201"}', "month_old": b"", "fresh": b'{"nik":"3201"}'}

    again = purge(config, "--dry-run")
    assert "bodies: would purge bodies of 0 requests" in again.stdout


async def test_without_retention_nothing_is_purged(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("bodies_after_days = 30\n", "")
                      .replace("rows_after_days = 365\n", ""), encoding="utf-8")
    result = purge(config)
    assert result.returncode == 0, result.stderr
    assert "everything is kept" in result.stdout


async def test_a_bad_retention_key_is_a_configuration_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("rows_after_days = 365",
                                                 "rows_after_days = 7"), encoding="utf-8")
    result = purge(config)
    assert result.returncode == 2
    assert "retention.rows_after_days: must be >= bodies_after_days (30)" in result.stderr


async def test_a_purge_beside_a_serving_tenang(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    ids = await seed(tmp_path / "tenang.db")
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    proc = await asyncio.create_subprocess_exec(
        *purge_command(write_config(tmp_path)), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    accepted: list[str] = []
    while proc.returncode is None:  # intake goes on while the purge runs
        async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                             json=booking(f"KB{len(accepted)}")) as resp:
            assert resp.status == 202
            accepted.append(resp.headers["X-Tenang-Request-Id"])
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "rows: purged whole rows of 1 requests" in out.decode()

    async def delivered() -> bool:
        async with http.get(f"{tenang.admin_url}/api/v1/requests/{accepted[-1]}",
                            headers=admin_headers()) as r:
            return (await r.json())["status"] == "succeeded"

    await wait_until(delivered, what="delivery after the purge")
    assert (await tenang.backend.log.get(ids["ancient"])) is None
    held = await tenang.backend.log.get(ids["ancient_held"])
    assert held is not None and held.body == b'{"nik":"3201"}'


async def test_a_purge_waits_out_a_write_lock_held_past_its_busy_timeout(
        tmp_path: Path) -> None:
    """A serving Tenang's group commit can hold SQLite's write lock past the purge's
    busy_timeout_ms (a slow fsync on a loaded disk, a long burst): the purge says it is
    waiting and goes on once the lock is free, instead of ending 'database is locked'."""
    config = with_busy_timeout(write_config(tmp_path), 100)
    ids = await seed(tmp_path / "tenang.db")
    with closing(sqlite3.connect(tmp_path / "tenang.db", isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # the other writer's lock
        proc = await asyncio.create_subprocess_exec(
            *purge_command(config), cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        assert proc.stderr is not None
        said = b""
        async with asyncio.timeout(60):
            while b"waiting" not in said:
                line = await proc.stderr.readline()
                assert line, f"the purge ended without waiting: {said.decode()}"
                said += line
        assert b"database is locked" in said
        holder.execute("ROLLBACK")
    out, err = await proc.communicate()
    assert proc.returncode == 0, (said + err).decode()
    assert "rows: purged whole rows of 1 requests" in out.decode()
    assert (await bodies(tmp_path / "tenang.db", ids))["ancient"] is None
