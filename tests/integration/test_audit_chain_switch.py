"""``[audit] chain = false``: a real Tenang stores and delivers without extending the hash
chain, the store records when the chain went off and on again (audit entries that are
themselves the last link before the gap and the first after it), and `tenang audit
verify`, run as the command it is, says plainly that the chain is off (exit 3), and
once it is back on, which period nothing in the chain covers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from tests.cli_support import tenang
from tests.conftest import StartTenang, make_config
from tests.integration.test_admin_api import wait_status
from tests.integration.test_audit_chain import config_file, write
from tests.sqlite_chain_support import entries_of


def chain_of(db: Path) -> list[tuple[str, str]]:
    return [(e.kind.value, e.ref) for e in entries_of(db)]


def switches(db: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, actor, action FROM audit_log WHERE target='chain' "
                            "ORDER BY id").fetchall()
    finally:
        conn.close()


async def delivered(config: Config, start_tenang: StartTenang, http: aiohttp.ClientSession,
                    kodebooking: str) -> str:
    """One booking through a Tenang on ``config``, delivered; then Tenang stops."""
    running = await start_tenang(config)
    request_id = await write(http, running.gateway_url, kodebooking)
    await wait_status(http, running.admin_url, request_id, "succeeded")
    await running.stop()
    return request_id


async def test_chain_off_stores_no_links_and_verify_says_so_until_it_is_on_again(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    on = make_config(tmp_path, bpjs_sim.url)
    off = make_config(tmp_path, bpjs_sim.url, audit={"chain": False})
    db = on.store.sqlite_path
    first = await delivered(on, start_tenang, http, "KB-SW-1")
    assert switches(db) == []  # on from the start: nothing to record
    before = chain_of(db)
    assert ("request", first) in before

    unchained = await delivered(off, start_tenang, http, "KB-SW-2")
    after_off = chain_of(db)
    [(off_id, actor, action)] = switches(db)
    assert (actor, action) == ("tenang", "chain_off")
    # The switch is the chain's last entry; nothing of the request stored while off.
    assert after_off == [*before, ("audit", str(off_id))]
    assert all(ref != unchained and not ref.startswith(unchained + "/")
               for _, ref in after_off)

    config = config_file(tmp_path, db)
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "\n[audit]\nchain = false\n", encoding="utf-8")
    result = tenang("audit", "verify", "--config", str(config))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "intact" in result.stdout
    assert "hash chain is OFF since" in result.stderr and "[audit] chain = false" in result.stderr

    again = await delivered(on, start_tenang, http, "KB-SW-3")
    (_, _, turned_off), (on_id, _, turned_on) = switches(db)
    assert (turned_off, turned_on) == ("chain_off", "chain_on")
    assert chain_of(db)[len(after_off)] == ("audit", str(on_id))  # the first link after
    assert ("request", again) in chain_of(db)
    config.write_text(text, encoding="utf-8")
    result = tenang("audit", "verify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "intact" in result.stdout and "the hash chain was off from" in result.stdout
