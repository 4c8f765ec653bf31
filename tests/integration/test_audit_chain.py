"""`tenang audit checkpoint` and `tenang audit verify`, run as the commands they are, on
the SQLite file a real Tenang wrote: SIMRS calls through intake, deliveries to the BPJS
simulator (one refused), an operator's retry and cancel (audited). Then the file is
changed behind Tenang's back, one byte or one row at a time, with sqlite3 while Tenang
is stopped, and verification must name what was changed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import booking
from tests.cli_support import store_config_file, tenang
from tests.conftest import StartTenang, make_config
from tests.integration.test_admin_api import api, wait_status
from tests.sqlite_chain_support import delete_entry, entries, entries_of, relink, set_leaf


def config_file(folder: Path, db: Path, extra: str = "", name: str = "tenang.toml") -> Path:
    """A config of the SQLite store at ``db`` for the commands; ``extra``: more TOML
    (sections)."""
    return store_config_file(folder, f"sqlite:///{db}", extra, name)


async def write(http: aiohttp.ClientSession, gateway_url: str, kodebooking: str,
                **extra: str) -> str:
    async with http.post(f"{gateway_url}/antreanrs/antrean/add",
                         json=booking(kodebooking, **extra)) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["X-Tenang-Request-Id"]


@pytest.fixture
async def traffic(tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
                  http: aiohttp.ClientSession) -> tuple[Path, dict[str, str]]:
    """A stopped Tenang's database after real traffic; its request ids by role."""
    config = make_config(tmp_path, bpjs_sim.url)
    running = await start_tenang(config)
    ids = await settle(http, bpjs_sim, running, "KB-CH")
    await running.stop()
    return config.store.sqlite_path, ids


async def settle(http: aiohttp.ClientSession, bpjs_sim: RunningSimulator, running: Tenang,
                 tag: str) -> dict[str, str]:
    """Three requests through ``running``, settled: two refused on their first send, of
    which an operator retries one (then delivered) and cancels the other; one delivered
    at once. Their ids by role; ``tag``: the kodebookings' prefix."""
    await bpjs_sim.fault("antrean/add", "reject", times=2)  # the first two sends refused
    ids = {"retried": await write(http, running.gateway_url, f"{tag}-1"),
           "cancelled": await write(http, running.gateway_url, f"{tag}-2")}
    for request_id in ids.values():
        await wait_status(http, running.admin_url, request_id, "failed")
    ids["delivered"] = await write(http, running.gateway_url, f"{tag}-3")
    await wait_status(http, running.admin_url, ids["delivered"], "succeeded")
    admin = running.admin_url
    await api(http, "POST", f"{admin}/api/v1/requests/{ids['retried']}/retry")
    await api(http, "POST", f"{admin}/api/v1/requests/{ids['cancelled']}/cancel")
    await wait_status(http, admin, ids["retried"], "succeeded")
    return ids


def tampered(db: Path, folder: Path, change: Callable[[sqlite3.Connection], object]) -> Path:
    """A copy of the stopped store with ``change`` made directly in the file; its config."""
    copy = folder / "copy" / db.name
    copy.parent.mkdir()
    shutil.copy(db, copy)
    conn = sqlite3.connect(copy)
    with conn:
        change(conn)
    conn.close()
    return config_file(folder, copy)


def one_byte_changed(body: bytes) -> bytes:
    return body[:10] + bytes([body[10] ^ 0x01]) + body[11:]


def test_an_untouched_store_verifies_and_a_checkpoint_prints_and_records_the_head(
        traffic: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, _ = traffic
    stored_chain = entries_of(db)
    kinds = Counter(e.kind.value for e in stored_chain)
    last_seq, last_head = stored_chain[-1].seq, stored_chain[-1].head
    assert kinds["request"] == 3 and kinds["attempt"] == 4  # 2 refused, 2 delivered
    # Claims, outcomes, the retry and the cancel (the first state is no entry of its own).
    assert kinds["audit"] >= 2 and kinds["state"] >= 2 * 3 + 2
    config = config_file(tmp_path, db)

    verified = tenang("audit", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stderr
    assert f"to seq {last_seq}" in verified.stdout and "intact" in verified.stdout

    taken = tenang("audit", "checkpoint", "--config", str(config), "--note", "daily")
    assert taken.returncode == 0, taken.stderr
    point = json.loads(taken.stdout)
    assert (point["head"], point["seq"]) == (bytes(last_head).hex(), last_seq)
    assert point["at"].endswith("Z")
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT seq, head, note FROM checkpoints").fetchall()
    conn.close()
    assert stored == [(last_seq, bytes(last_head), "daily")]

    since = tenang("audit", "verify", "--config", str(config), "--from-checkpoint",
                   point["head"])
    assert since.returncode == 0, since.stderr
    assert f"from checkpoint seq {last_seq}" in since.stdout
    unknown = tenang("audit", "verify", "--config", str(config), "--from-checkpoint",
                     "ab" * 32)
    assert unknown.returncode == 2
    assert "no checkpoint" in unknown.stderr


def test_one_byte_of_one_stored_body_changed_is_found_and_named(
        traffic: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, ids = traffic
    target = ids["delivered"]

    def change(conn: sqlite3.Connection) -> None:
        (body,) = conn.execute("SELECT body FROM requests WHERE id=?", (target,)).fetchone()
        conn.execute("UPDATE requests SET body=? WHERE id=?", (one_byte_changed(body), target))

    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, change)))
    assert result.returncode == 1, result.stdout
    assert f"request {target}" in result.stderr and "changed" in result.stderr


def test_a_changed_attempt_is_found_and_named(
        traffic: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, ids = traffic
    target = ids["retried"]

    def change(conn: sqlite3.Connection) -> None:
        # The refusal rewritten as a success, as someone hiding it might.
        conn.execute("UPDATE attempts SET verdict='success' WHERE request_id=? AND number=1",
                     (target,))

    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, change)))
    assert result.returncode == 1
    assert f"attempt {target}/1" in result.stderr


def test_a_deleted_chain_entry_is_found_by_its_seq(
        traffic: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, _ = traffic
    result = tenang("audit", "verify", "--config", str(tampered(
        db, tmp_path, lambda conn: delete_entry(conn, 5))))
    assert result.returncode == 1
    assert "seq 5" in result.stderr and "missing" in result.stderr


def test_a_rewritten_state_change_and_audit_entry_are_found(
        traffic: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, ids = traffic

    def state(conn: sqlite3.Connection) -> None:
        n = conn.execute(
            "UPDATE chain SET record=CAST(replace(CAST(record AS TEXT), 'failed', "
            "'succeeded') AS BLOB) WHERE kind='state' AND ref=? "
            "AND CAST(record AS TEXT) LIKE '%\"to\":\"failed\"%'",
            (ids["cancelled"],)).rowcount
        assert n == 1

    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, state)))
    assert result.returncode == 1
    assert f"state {ids['cancelled']}" in result.stderr

    def audit(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE audit_log SET actor='someone-else' WHERE action='cancel'")

    shutil.rmtree(tmp_path / "copy")
    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, audit)))
    assert result.returncode == 1
    assert "audit " in result.stderr and "changed" in result.stderr


def test_a_chain_rewritten_after_a_checkpoint_fails_at_that_checkpoint(
        traffic: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, ids = traffic
    config = config_file(tmp_path, db)
    taken = tenang("audit", "checkpoint", "--config", str(config))
    assert taken.returncode == 0, taken.stderr
    seq = json.loads(taken.stdout)["seq"]

    def rewrite(conn: sqlite3.Connection) -> None:
        # Changed the body AND recomputed every leaf and head after it: only the
        # checkpoint (kept off the machine, and in the store) can tell.
        from proxy.store import chain
        from proxy.store.sealing import PLAINTEXT
        from proxy.store.sqlite.rows import row_to_request

        target = ids["retried"]
        (body,) = conn.execute("SELECT body FROM requests WHERE id=?", (target,)).fetchone()
        conn.execute("UPDATE requests SET body=? WHERE id=?", (one_byte_changed(body), target))
        from proxy.store.sqlite.queries import QUERIES

        row = conn.execute(QUERIES["get_request"], (target,)).fetchone()
        leaf = chain.request_link(row_to_request(row, PLAINTEXT)).leaf
        [entry] = [e for e in entries(conn) if e.kind == "request" and e.ref == target]
        set_leaf(conn, entry.seq, leaf)
        relink(conn)

    result = tenang("audit", "verify", "--config", str(tampered(db, tmp_path, rewrite)))
    assert result.returncode == 1
    assert f"seq {seq}" in result.stderr and "checkpoint" in result.stderr
