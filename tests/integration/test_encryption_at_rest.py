"""Encryption at rest as an operator turns it on and rotates it: a running Tenang with
`[store] encryption_key_env` set takes signed SIMRS calls carrying a NIK and a card
number over HTTP and delivers them to the BPJS simulator as sent; the database's own
files (SQLite: the file and its WAL, raw bytes; PostgreSQL: the columns' raw bytes, and
the table's files and the WAL in the data directory when this user may read it) hold
neither; the admin API shows the bodies; `tenang rekey` moves every value to a new key
while Tenang serves, with `tenang audit verify` green before and after; the old key
removed, every request still reads; a wrong or missing key stops `check-config` and
`serve` with one line."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config, load_config
from tests import cli_support as cli
from tests.admin_ui.conftest import Browser, with_ui_users
from tests.bpjs_support import booking
from tests.conftest import ADMIN_TOKEN, StartTenang
from tests.integration.test_admin_api import api, wait_status
from tests.integration.test_start_stop import one_line_error
from tests.pg_support import fresh_schema
from tests.signing import TEST_CONS_ID, TEST_SECRET, TEST_SECRET_ENV

REPO = Path(__file__).resolve().parents[2]
KEYS_ENV = "TENANG_TEST_KEYS"


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Store:
    """Where the test's store is, and how to read its raw bytes past Tenang."""

    kind: str
    url: str
    folder: Path
    raw: Callable[[], Awaitable[list[bytes]]]  # every place a stored value may be
    key_ids: Callable[[], Awaitable[set[str | None]]]
    notes: list[str] = field(default_factory=list)


def _sqlite(folder: Path) -> Store:
    db = folder / "tenang.db"

    async def raw() -> list[bytes]:
        return [p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists()]

    async def key_ids() -> set[str | None]:
        conn = sqlite3.connect(db)
        try:
            return {r[0] for r in conn.execute(
                "SELECT key_id FROM requests UNION SELECT key_id FROM attempts "
                "UNION SELECT key_id FROM callbacks")}
        finally:
            conn.close()

    return Store("sqlite", f"sqlite:///{db}", folder, raw, key_ids)


async def _pg_relations(conn: asyncpg.Connection) -> tuple[str, list[str]]:
    """The data directory, and the files (relative to it) of the requests, attempts and
    callbacks tables and of their TOAST tables, after a checkpoint wrote them."""
    await conn.execute("CHECKPOINT")
    rels = []
    for table in ("requests", "attempts", "callbacks"):
        rels += [r[0] for r in await conn.fetch(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c WHERE c.oid = $1::regclass "
            "OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = $1::regclass)", table)
            if r[0] is not None]
    return str(await conn.fetchval("SHOW data_directory")), rels


def _pg_files(data_directory: str, rels: list[str], since: float) -> list[Path]:
    """Those files (every segment, free-space and visibility map) and the WAL segments
    written since ``since``, when this user may read the data directory (root, or
    postgres); none otherwise."""
    data = Path(data_directory)
    if not os.access(data, os.R_OK | os.X_OK):
        return []
    files = [f for rel in rels for f in data.glob(rel + "*")]
    return files + [f for f in sorted((data / "pg_wal").glob("0*"))
                    if f.stat().st_mtime >= since - 1]


def _postgres(folder: Path, url: str) -> Store:
    notes: list[str] = []
    since = time.time()

    async def raw() -> list[bytes]:
        conn = await asyncpg.connect(url)
        try:
            values = [bytes(r[0]) for r in await conn.fetch(
                "SELECT body FROM requests UNION ALL SELECT response_body FROM attempts "
                "WHERE response_body IS NOT NULL UNION ALL SELECT payload FROM callbacks")]
            files = _pg_files(*await _pg_relations(conn), since)
        finally:
            await conn.close()
        if not files:
            notes.append("data directory not readable: raw column bytes checked only")
        return values + [f.read_bytes() for f in files]

    async def key_ids() -> set[str | None]:
        conn = await asyncpg.connect(url)
        try:
            return {r[0] for r in await conn.fetch(
                "SELECT key_id FROM requests UNION SELECT key_id FROM attempts "
                "UNION SELECT key_id FROM callbacks")}
        finally:
            await conn.close()

    return Store("postgres", url, folder, raw, key_ids, notes)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        yield _sqlite(tmp_path)
        return
    async with fresh_schema() as url:
        yield _postgres(tmp_path, url)


def config_file(store: Store, target: str) -> Path:
    path = store.folder / "tenang.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
url = "{store.url}"
encryption_key_env = "{KEYS_ENV}"

[relay]
poll_interval_s = 0.05

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "{target}/antreanrs"
preset = "antrean"
cons_id = "{TEST_CONS_ID}"
secret_env = "{TEST_SECRET_ENV}"
timeout_s = 2.0
""", encoding="utf-8")
    return path


def ui_config(path: Path, env: dict[str, str]) -> Config:
    """The config file as `serve` loads it, with one admin UI user per role."""
    return with_ui_users(load_config(path, env))


def environment(store: Store, keys: str | None) -> dict[str, str]:
    env = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN, TEST_SECRET_ENV: TEST_SECRET}
    env.pop(KEYS_ENV, None)
    if keys is not None:
        env[KEYS_ENV] = keys
    return env


async def tenang_async(env: dict[str, str], *args: str) -> tuple[int, str]:
    """``tenang`` beside the test's own event loop (an in-process Tenang keeps serving):
    its exit code, and its stdout and stderr together."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return (proc.returncode if proc.returncode is not None else -1), out.decode()


def tenang(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return cli.tenang(*args, env=env)


def export(store: Store, config: Path, env: dict[str, str]) -> list[dict[str, str]]:
    """`tenang export` of every request (JSON Lines), as an auditor runs it."""
    out = store.folder / "export.jsonl"
    today = datetime.now(UTC).date()
    result = tenang(env, "export", "--config", str(config), "--format", "jsonl",
                    "--since", str(today - timedelta(days=1)),
                    "--until", str(today + timedelta(days=1)), "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@dataclass
class Patient:
    """Identifiers made for this run only, so a match in shared files (the PostgreSQL
    WAL holds every test's rows) can only be this test's."""

    nik: str = field(default_factory=lambda: "32" + "".join(secrets.choice("0123456789")
                                                               for _ in range(14)))
    card: str = field(default_factory=lambda: "000" + "".join(secrets.choice("0123456789")
                                                                for _ in range(10)))
    doctor: str = field(default_factory=lambda: f"dr. Rahasia {secrets.token_hex(4)}")

    def words(self) -> list[bytes]:
        return [self.nik.encode(), self.card.encode(), self.doctor.encode()]


async def send(http: aiohttp.ClientSession, gateway_url: str, patient: Patient,
               n: int) -> tuple[str, bytes]:
    raw = json.dumps(booking(f"KB-ENC-{secrets.token_hex(3)}-{n}", nik=patient.nik,
                             nomorkartu=patient.card, namadokter=patient.doctor)).encode()
    async with http.post(f"{gateway_url}/antreanrs/antrean/add", data=raw,
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["X-Tenang-Request-Id"], raw


async def assert_no_plaintext(store: Store, patient: Patient) -> None:
    blobs = await store.raw()
    assert blobs
    for blob in blobs:
        for word in patient.words():
            assert word not in blob, f"{word!r} found in the {store.kind} store's bytes"


async def shown_in_full(http: aiohttp.ClientSession, running: Tenang, patient: Patient,
                        sent: dict[str, bytes]) -> None:
    """Each request in full: its detail in the JSON API (the admin token) and on the UI's
    detail page (an admin's login)."""
    # unsafe=True: aiohttp's cookie jar otherwise ignores cookies from IP addresses.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        browser = Browser(running.admin_url, session)
        assert await browser.login("adi") == 303
        await _shown_in_full(http, running, browser, patient, sent)


async def _shown_in_full(http: aiohttp.ClientSession, running: Tenang, browser: Browser,
                         patient: Patient, sent: dict[str, bytes]) -> None:
    for request_id, raw in sent.items():
        detail = await api(http, "GET", f"{running.admin_url}/api/v1/requests/{request_id}")
        assert detail["status"] == "succeeded"
        assert detail["body"] == raw.decode()  # the admin role sees identifiers in full
        assert detail["last_response"]
        status, page, _ = await browser.get(f"/requests/{request_id}")
        assert status == 200 and patient.nik in page and patient.card in page


async def test_encrypted_at_rest_delivered_as_sent_rekeyed_and_refused_with_a_wrong_key(
        store: Store, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    first, second = f"k1:{key()}", f"k2:{key()}"
    config = config_file(store, bpjs_sim.url)
    patient = Patient()

    running = await start_tenang(ui_config(config, environment(store, first)))
    sent = dict([await send(http, running.gateway_url, patient, n) for n in range(3)])
    for request_id in sent:
        await wait_status(http, running.admin_url, request_id, "succeeded")
    delivered = [e["body"] for e in await bpjs_sim.log("antrean/add")]
    assert sorted(map(json.dumps, delivered)) == sorted(
        json.dumps(json.loads(raw)) for raw in sent.values())
    await assert_no_plaintext(store, patient)  # serving: SQLite's WAL not checkpointed
    await shown_in_full(http, running, patient, sent)
    await running.stop()
    await assert_no_plaintext(store, patient)
    assert await store.key_ids() == {"k1"}
    verified = tenang(environment(store, first), "audit", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Rotation: k2 first, k1 after it, Tenang restarted; rekey runs while it serves.
    rotating = environment(store, f"{second},{first}")
    running = await start_tenang(ui_config(config, rotating))
    rekeying = asyncio.create_task(tenang_async(rotating, "rekey", "--config", str(config)))
    meanwhile = dict([await send(http, running.gateway_url, patient, n) for n in (3, 4)])
    for request_id in meanwhile:
        await wait_status(http, running.admin_url, request_id, "succeeded")
    code, out = await rekeying
    assert code == 0, out
    # The 3 bodies and BPJS's 3 answers stored under k1 (no callback_url: no payloads);
    # what was stored meanwhile went in under k2.
    assert "re-encrypted 6 values under key id k2" in out
    assert "no value is left under k1" in out
    sent |= meanwhile
    await shown_in_full(http, running, patient, sent)
    await running.stop()
    assert await store.key_ids() == {"k2"}
    await assert_no_plaintext(store, patient)
    verified = tenang(environment(store, second), "audit", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr  # the same chain
    exported = export(store, config, environment(store, second))
    assert sorted(r["body"] for r in exported) == sorted(r.decode() for r in sent.values())
    assert all(r["last_response"] for r in exported)  # BPJS's answers, decrypted

    running = await start_tenang(ui_config(config, environment(store, second)))
    await shown_in_full(http, running, patient, sent)  # the old key is gone
    await running.stop()

    checked = tenang(environment(store, f"{second},k0:{key()}"), "check-config", "--config",
                     str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "encryption at rest: on, key id k2 (previous: k0)" in checked.stdout
    refusals = {
        f"k2:{key()}": "key id 'k2' in store.encryption_key_env (TENANG_TEST_KEYS) is not "
                       "the key this store was encrypted with under that id (wrong key?)",
        f"k3:{key()}": "holds values encrypted under key id 'k2', which "
                       "store.encryption_key_env (TENANG_TEST_KEYS) does not hold",
        None: "environment variable TENANG_TEST_KEYS is not set",
        "k2:c2hvcnQ=": "key 1 (k2): 5 bytes, expected 32",
    }
    for keys, words in refusals.items():
        for command in ("check-config", "serve"):
            result = tenang(environment(store, keys), command, "--config", str(config))
            assert result.returncode == 2, (command, keys, result.stdout, result.stderr)
            assert words in one_line_error(result), (command, result.stderr)
    for note in store.notes:
        print(f"{store.kind}: {note}")


async def flip_a_byte(store: Store, request_id: str) -> None:
    """Byte 20 of the request's stored (sealed) body XOR 1, behind Tenang's back."""
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.folder / "tenang.db")
        with conn:
            (body,) = conn.execute("SELECT body FROM requests WHERE id=?",
                                   (request_id,)).fetchone()
            conn.execute("UPDATE requests SET body=? WHERE id=?",
                         (body[:20] + bytes([body[20] ^ 0x01]) + body[21:], request_id))
        conn.close()
        return
    pg = await asyncpg.connect(store.url)
    try:
        await pg.execute("UPDATE requests SET body = set_byte(body, 20, get_byte(body, 20) # 1)"
                         " WHERE id = $1", request_id)
    finally:
        await pg.close()


async def test_a_changed_byte_of_an_encrypted_body_fails_verification_naming_it(
        store: Store, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    keys = f"k1:{key()}"
    config = config_file(store, bpjs_sim.url)
    running = await start_tenang(load_config(config, environment(store, keys)))
    request_id, _ = await send(http, running.gateway_url, Patient(), 1)
    await wait_status(http, running.admin_url, request_id, "succeeded")
    await running.stop()
    await flip_a_byte(store, request_id)

    result = tenang(environment(store, keys), "audit", "verify", "--config", str(config))

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"request {request_id}: record changed since it was stored" in \
        result.stdout + result.stderr
