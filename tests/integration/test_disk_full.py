"""Disk full, for real (issue 10, "Proof that stays"): Tenang's SQLite file on a
few-MiB tmpfs, nearly filled, then a burst of concurrent writes.

- no 202 without a stored row; every refusal is a 503 naming the reason;
- /readyz says not ready while intake refuses for the disk;
- the free-disk floor holds under the burst, so the relay can still record outcomes;
- intake resumes by itself when space returns (a filler file is deleted).

Needs root to mount a tmpfs (CI runs as root); skipped with the reason elsewhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.store.sqlite.db import WAL_LIMIT, sqlite_free_bytes
from tests.bpjs_support import booking
from tests.conftest import StartTenang, admin_headers, make_config, wait_until

MiB = 1024 * 1024
# Room for SQLite's WAL to grow to its checkpoint size (~4 MiB, not free for intake),
# the floor, and a burst's worth above it.
DISK_MB = 12
FLOOR_MB = 2
WRITE = "/antreanrs/antrean/add"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs",
                               str(where)], capture_output=True, text=True, check=False)
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test: {exc}")
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs for the disk-full test (needs root): "
                    + (done.stderr.strip() or f"mount exited {done.returncode}"))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave_bytes: int, name: str = "filler") -> Path:
    """A filler file that leaves about ``leave_bytes`` free on ``disk``."""
    filler = disk / name
    size = shutil.disk_usage(disk).free - leave_bytes
    with filler.open("wb") as f:
        f.write(b"\0" * max(size, 0))
        f.flush()
        os.fsync(f.fileno())
    return filler


async def post(http: aiohttp.ClientSession, url: str, n: int) -> tuple[int, Any, str]:
    # ~2 KB: an Antrean add with its patient fields and a long note.
    body = booking(f"KB-DISK-{n}-{uuid.uuid4().hex[:8]}", keterangan="x" * 1450)
    async with http.post(url + WRITE, json=body) as resp:
        return resp.status, await resp.json(), resp.headers.get("X-Tenang-Request-Id", "")


async def test_a_burst_onto_a_full_disk_keeps_every_promise(
        small_disk: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    cfg = make_config(small_disk, bpjs_sim.url)
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, min_free_mb=FLOOR_MB))
    # The relay starts after the burst: what the floor holds against is intake alone.
    tenang = await start_tenang(cfg, relay_enabled=False)
    # Before the first sample of free space: 1.5 MiB above the floor and the WAL's room.
    filler = fill(small_disk, WAL_LIMIT + FLOOR_MB * MiB + int(1.5 * MiB))

    answers = await asyncio.gather(*(post(http, tenang.gateway_url, n) for n in range(400)))
    accepted = [rid for status, _, rid in answers if status == 202]
    refused = [doc for status, doc, _ in answers if status != 202]
    assert accepted, "some of the burst fits above the floor"
    assert refused, "the burst does not fit: some must be refused"
    for doc in refused:  # a 503 naming the reason, never a 500 or a ENOSPC surprise
        assert doc["metadata"]["code"] == 503
        assert "disk almost full" in doc["metadata"]["message"]
    for status, _, _ in answers:
        assert status in (202, 503)
    for rid in accepted:  # no 202 without its row
        assert await tenang.backend.log.get(rid) is not None
    free = shutil.disk_usage(small_disk).free
    db = small_disk / "tenang.db"
    assert sqlite_free_bytes(db) >= FLOOR_MB * MiB, "the burst went through the floor"
    assert free >= FLOOR_MB * MiB, f"{free} B left on the disk"

    # The floor left room for the relay: every accepted request is delivered and its
    # outcome recorded.
    assert tenang.relay is not None
    tenang.relay.start()
    for rid in accepted:
        async def succeeded(rid: str = rid) -> bool:
            row = await tenang.backend.log.get(rid)
            return row is not None and row.status.value == "succeeded"
        await wait_until(succeeded, timeout_s=30.0, what=f"{rid} delivered and recorded")

    # The disk fills up (another program's files): intake refuses, and /readyz says so.
    more = fill(small_disk, WAL_LIMIT + FLOOR_MB * MiB // 2, name="more")

    async def refusing() -> bool:
        status, doc, _ = await post(http, tenang.gateway_url, 20_000)
        assert status in (202, 503)
        return status == 503 and "disk almost full" in doc["metadata"]["message"]
    await wait_until(refusing, timeout_s=5.0, interval_s=0.2, what="intake to refuse")
    async with http.get(f"{tenang.admin_url}/readyz") as resp:
        assert resp.status == 503
        doc = await resp.json()
    assert "disk almost full" in doc["reason"] and doc["status"] == "not ready"

    filler.unlink()  # space returns: intake resumes by itself within a sample or so
    more.unlink()

    async def accepts() -> bool:
        status, _, _ = await post(http, tenang.gateway_url, 10_000)
        return status == 202
    await wait_until(accepts, timeout_s=5.0, interval_s=0.2, what="intake to resume")
    async with http.get(f"{tenang.admin_url}/readyz", headers=admin_headers()) as resp:
        assert resp.status == 200
