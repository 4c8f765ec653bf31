"""A purge leaves tombstones carrying the hashes (issue 14, scope 2), so `tenang audit
verify` stays green, run as the commands they are on the SQLite file a real Tenang wrote:
requests from SIMRS through intake, delivered to the BPJS simulator (one refused first,
then retried by an operator, one cancelled), 400 days ago by Tenang's clock, and one
delivered today. `tenang purge` drops the old bodies, then the old rows; the chain
verifies after each. Then the file is changed behind Tenang's back: a byte of the body
that remains, a tombstone's hash, a tombstone laid over a record still stored."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import proxy.ids
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from proxy.ops.retention import DAY_S
from tests.cli_support import tenang
from tests.conftest import StartTenang, make_config
from tests.integration.test_admin_api import wait_status
from tests.integration.test_audit_chain import (
    config_file,
    one_byte_changed,
    settle,
    tampered,
    write,
)
from tests.sqlite_chain_support import forge_tombstone

AGE_S = 400 * DAY_S
BODIES = "[retention]\nbodies_after_days = 30\n"
ROWS = "[retention]\nbodies_after_days = 30\nrows_after_days = 365\n"
# In the body of today's request only: where one byte of it is changed in the file.
MARK = "catatan-hari-ini-4711"


@pytest.fixture
async def aged(tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
               http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[Path, dict[str, str]]:
    """A stopped Tenang's database: three requests settled 400 days ago (by a clock that
    runs 400 days behind, so retries come due), one delivered now; their ids by role."""
    # Ids never sort before one this process minted (proxy.ids): an earlier test's ids
    # of today would pull these old ones up to today. A fresh process starts from none.
    monkeypatch.setattr(proxy.ids, "_last", 0)
    # The SIMRS signs with today's time: no timestamp check against the old clock.
    config = make_config(tmp_path, bpjs_sim.url, max_skew_s=0.0)
    ids = await aged_traffic(http, bpjs_sim, start_tenang, config, "KB-OLD")
    return config.store.sqlite_path, ids


async def aged_traffic(http: aiohttp.ClientSession, bpjs_sim: RunningSimulator,
                       start_tenang: StartTenang, config: Config, tag: str) -> dict[str, str]:
    """`settle` through a Tenang whose clock runs 400 days behind, then one request
    (``MARK`` in its body) delivered by one on today's clock; both stopped. The ids by
    role, today's as "today"; ``tag``: the kodebookings' prefix."""
    old = await start_tenang(config, clock=lambda: time.time() - AGE_S)
    ids = await settle(http, bpjs_sim, old, tag)
    await old.stop()
    today = await start_tenang(config)
    ids["today"] = await write(http, today.gateway_url, f"{tag}-NEW", keterangan=MARK)
    await wait_status(http, today.admin_url, ids["today"], "succeeded")
    await today.stop()
    return ids


def verify(config: Path) -> str:
    result = tenang("audit", "verify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "intact" in result.stdout
    return result.stdout


def purge(config: Path, *expected: str) -> None:
    result = tenang("purge", "--config", str(config))
    assert result.returncode == 0, result.stderr
    for line in expected:
        assert line in result.stdout


def chain_rows(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def flip_in_file(db: Path, marker: str) -> None:
    """One byte of ``marker`` changed in the database file itself, where SQLite keeps the
    only copy of it (the WAL checkpointed into the file when Tenang stopped)."""
    data = bytearray(db.read_bytes())
    at = data.find(marker.encode())
    assert at >= 0 and data.find(marker.encode(), at + 1) < 0, "the marker once, in one body"
    data[at + len(marker) - 1] ^= 0x01
    db.write_bytes(bytes(data))


def test_a_purged_store_verifies_after_its_bodies_and_after_its_rows_go(
        aged: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, ids = aged
    old = [ids["retried"], ids["cancelled"], ids["delivered"]]
    verify(config_file(tmp_path, db))

    purge(config_file(tmp_path, db, BODIES, "bodies.toml"),
          "bodies: purged bodies of 3 requests")
    bodies = {i: bytes(b) for i, b in chain_rows(db, "SELECT id, body FROM requests")}
    assert all(bodies[i] == b"" for i in old) and MARK.encode() in bodies[ids["today"]]
    marked = chain_rows(db, "SELECT kind, ref FROM chain WHERE purged_at IS NOT NULL")
    assert {ref for _, ref in marked if isinstance(ref, str) and "/" not in ref} == set(old)
    # Two refused sends and one success for the retried one, one each for the others.
    assert sum(kind == "attempt" for kind, _ in marked) == 4
    verify(config_file(tmp_path, db))

    purge(config_file(tmp_path, db, ROWS, "rows.toml"), "rows: purged whole rows of 3")
    assert [r for (r,) in chain_rows(db, "SELECT id FROM requests")] == [ids["today"]]
    assert chain_rows(db, "SELECT COUNT(*) FROM chain WHERE purged_at IS NOT NULL") == [
        (len(marked),)]  # the bodies' tombstones stand for the rows too
    verify(config_file(tmp_path, db))


@pytest.fixture
def purged(aged: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    db, ids = aged
    purge(config_file(tmp_path, db, ROWS, "rows.toml"), "rows: purged whole rows of 3")
    return db, ids


def test_one_byte_of_the_body_that_remains_changed_in_the_file_is_named(
        purged: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, ids = purged
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    flip_in_file(copy, MARK)
    result = tenang("audit", "verify", "--config", str(config_file(tmp_path, copy)))
    assert result.returncode == 1, result.stdout
    assert f"request {ids['today']}" in result.stderr and "changed" in result.stderr


def test_a_tombstone_changed_is_named(purged: tuple[Path, dict[str, str]],
                                      tmp_path: Path) -> None:
    db, ids = purged
    target = ids["delivered"]

    def rehash(conn: sqlite3.Connection) -> None:
        # Its hash swapped for another record's: it no longer links to the next entry.
        n = conn.execute("UPDATE chain SET leaf=? WHERE kind='request' AND ref=?",
                         (bytes(32), target)).rowcount
        assert n == 1

    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, rehash)))
    assert result.returncode == 1
    assert f"request {target}" in result.stderr and "head does not follow" in result.stderr


def test_a_tombstone_laid_over_a_record_still_stored_is_named(
        purged: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """Someone changes today's body and marks its entry purged, hoping verification
    skips it."""
    db, ids = purged
    target = ids["today"]

    def hide(conn: sqlite3.Connection) -> None:
        (body,) = conn.execute("SELECT body FROM requests WHERE id=?", (target,)).fetchone()
        conn.execute("UPDATE requests SET body=? WHERE id=?", (one_byte_changed(body), target))
        forge_tombstone(conn, target, 1)

    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, hide)))
    assert result.returncode == 1
    assert f"request {target}" in result.stderr
    assert "marked purged, but its record is still stored" in result.stderr

    def unmark(conn: sqlite3.Connection) -> None:
        # A tombstone taken away: the record it stood for is missing.
        conn.execute("UPDATE chain SET purged_at=NULL WHERE kind='request' AND ref=?",
                     (ids["cancelled"],))

    shutil.rmtree(tmp_path / "copy")
    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, unmark)))
    assert result.returncode == 1
    assert f"request {ids['cancelled']}" in result.stderr and "missing" in result.stderr
