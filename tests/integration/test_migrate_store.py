"""`tenang migrate-store` as an operator runs it at the cut-over from SQLite to PostgreSQL:
every table arrives (the counts are printed and match), every request reads back the
same through the PostgreSQL roles, the order per booking survives, and the queue works
afterwards (a new request comes after the copied ones; a stopped Tenang's lease is taken
over; the next due one is claimed and delivered). It refuses a SQLite file a Tenang is
serving and a target that already holds a store, and changes neither."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bench.scale_store import build
from proxy.config import StoreConfig
from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition, Verdict
from proxy.ops.audit_chain import verify_chain
from proxy.store.backend import Backend
from proxy.store.chain import ChainHead
from proxy.store.postgres.backend import postgres_backend
from proxy.store.postgres.from_sqlite import TABLES
from proxy.store.records import (
    AttemptRecord,
    NewCallback,
    NewRequest,
    RequestFilter,
    Session,
    StoredRequest,
)
from proxy.store.sealing import PLAINTEXT, Keyring, SealingError
from proxy.store.sqlite import sqlite_backend
from tests.integration.test_start_stop import Serving, one_line_error, tenang, write_config
from tests.pg_support import fresh_schema
from tests.store_support import enqueue

UP = "antrean"
BOOKINGS = 5
TASKS = 7
OLD_OWNER = "stopped-host:1:dead"
COUNT_LINE = re.compile(r"^  (\w+) +(\d+) +(\d+)  (ok|MISMATCH)$", re.MULTILINE)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


def task(booking: int, number: int, at: float) -> NewRequest:
    code = f"KB{booking:03d}"
    return NewRequest(
        id=new_request_id(at), upstream=UP, method="POST",
        path="/antreanrs/antrean/updatewaktu", query="",
        headers=(("Content-Type", "application/json"),),
        body=f'{{"kodebooking":"{code}","taskid":{number}}}'.encode(), received_at=at,
        endpoint="antrean.updatewaktu", ordering_key=f"{UP}:kodebooking={code}",
        dedup_key=f"{UP}:updatewaktu:kodebooking={code}:taskid={number}")


async def seed(path: Path, now: float, keys: Keyring = PLAINTEXT) -> None:
    """A single-node store with a row in every table: tasks 1..7 of five bookings
    interleaved (as SIMRS sends them), one delivered with its attempt and callback, one
    left in flight by the Tenang that was stopped, a user with a session, audit entries,
    a maintenance window and a bulk job."""
    backend = sqlite_backend(path, keys=keys)
    await backend.engine.open()
    try:
        at = now - 600
        for number in range(1, TASKS + 1):
            for booking in range(BOOKINGS):
                at += 1
                await enqueue(backend.intake, task(booking, number, at))
        [first] = await backend.queue.claim_due(UP, now - 300, 1, OLD_OWNER, now - 290)
        await backend.queue.complete_attempt(
            first.id, OLD_OWNER,
            AttemptRecord(1, now - 300, 0.2, Verdict.SUCCESS, 200, None, b'{"metadata":{}}'),
            Transition(Status.SUCCEEDED, "delivered"), now - 299,
            NewCallback("http://simrs.example/cb", b'{"status":"succeeded"}'))
        # Leased until a moment ago: the Tenang that held it was stopped mid-send.
        await backend.queue.claim_due(UP, now - 10, 1, OLD_OWNER, now - 1)
        await backend.accounts.add_user("siti", "$argon2id$v=19$placeholder", "admin", now)
        await backend.sessions.create_session(
            Session("session-1", "siti", "csrf-1", now, now + 3600))
        await backend.audit.audit("siti", "login", None, None, now)
        await backend.audit.audit("siti", "user.add", "siti", "role=admin", now)
        window = await backend.schedules.add_maintenance_window(
            UP, now + 3600, now + 7200, "BPJS announced downtime", "siti", now)
        await backend.schedules.cancel_maintenance_window(window.id, now + 1)
        await backend.schedules.add_bulk_job("siti", '{"status":"dead"}', 0, now)
    finally:
        await backend.engine.close()


async def snapshot(backend: Backend) -> dict[str, object]:
    """What the roles read back, to compare one backend with the other."""
    rows: dict[str, object] = {}
    page = await backend.log.find_requests(RequestFilter(), limit=1000, cursor=None)
    for r in page.items:
        rows[r.id] = (r, await backend.log.attempts(r.id))
    rows["user"] = await backend.accounts.get_user("siti")
    rows["session"] = await backend.sessions.get_session("session-1", time.time())
    rows["audit"] = await backend.audit.audit_entries()
    rows["windows"] = await backend.schedules.maintenance_windows()
    rows["bulk"] = await backend.schedules.unfinished_bulk_jobs()
    rows["summary"] = await backend.log.summary()
    return rows


async def read_back(backend: Backend) -> dict[str, object]:
    await backend.engine.open()
    try:
        return await snapshot(backend)
    finally:
        await backend.engine.close()


def pg(url: str, keys: Keyring = PLAINTEXT) -> Backend:
    return postgres_backend(StoreConfig(url=url, pool_min=1, pool_max=4), keys)


def printed_counts(stdout: str) -> dict[str, tuple[int, int]]:
    """The count check migrate-store printed: table -> (SQLite, PostgreSQL), matched."""
    return {m[1]: (int(m[2]), int(m[3])) for m in COUNT_LINE.finditer(stdout)
            if m[4] == "ok"}


def migrate_store(db: Path, url: str) -> subprocess.CompletedProcess[str]:
    return tenang("migrate-store", "--from", f"sqlite:///{db}", "--to", url)


async def out_of_seq_order(url: str) -> int:
    """Requests whose store-side order (seq) disagrees with SQLite's (id)."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY seq) AS before "
            "FROM requests) r WHERE r.before >= r.id"))
    finally:
        await conn.close()


async def unanalyzed(url: str) -> set[str]:
    """Tables of the store the planner has no statistics for (never analyzed)."""
    conn = await asyncpg.connect(url)
    try:
        return {r["relname"] for r in await conn.fetch(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND last_analyze IS NULL AND last_autoanalyze IS NULL")}
    finally:
        await conn.close()


async def tables_in(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM information_schema.tables "
                                       "WHERE table_schema = current_schema()"))
    finally:
        await conn.close()


async def test_every_table_arrives_and_the_queue_carries_on(tmp_path: Path,
                                                            pg_url: str) -> None:
    db, now = tmp_path / "tenang.db", time.time()
    await seed(db, now)
    before = await read_back(sqlite_backend(db))
    chained = await sqlite_chain_head(db)

    result = migrate_store(db, pg_url)

    assert result.returncode == 0, result.stderr
    assert printed_counts(result.stdout) == {
        "users": (1, 1), "sessions": (1, 1), "requests": (BOOKINGS * TASKS,) * 2,
        "attempts": (1, 1), "callbacks": (1, 1), "audit_log": (2, 2),
        "maintenance_windows": (1, 1), "bulk_jobs": (1, 1),
        "chain": (chained.seq, chained.seq), "checkpoints": (1, 1),
        "verifications": (1, 1), "sealing_keys": (0, 0)}, result.stdout
    assert set(printed_counts(result.stdout)) == {t.name for t in TABLES}
    assert "queue counts" in result.stdout and "MISMATCH" not in result.stdout
    assert await out_of_seq_order(pg_url) == 0
    # The planner knows the copied tables: a claim on a big copied queue uses its index.
    assert not {t.name for t in TABLES} & await unanalyzed(pg_url)
    backend = pg(pg_url)
    await backend.engine.open()
    try:
        assert await snapshot(backend) == before
        # The chain came along: SQLite's head is PostgreSQL's, appends continue after it,
        # and the whole chain verifies from SQLite's first entry, through its checkpoint.
        assert await backend.chain.chain_head() == chained
        await backend.audit.audit("siti", "logout", None, None, now)
        assert (await backend.audit.audit_entries(limit=1))[0].id == 3  # ids carry on
        await queue_carries_on(backend, now)
        verified = await verify_chain(backend.chain, now)
        assert verified.ok and verified.from_seq == 0, verified
        assert verified.head_seq > chained.seq
        assert (await verify_chain(backend.chain, now, from_head=chained.head)).ok
    finally:
        await backend.engine.close()
    assert await out_of_seq_order(pg_url) == 0  # the request stored after them too


async def sqlite_chain_head(db: Path) -> ChainHead:
    """The SQLite store's chain head, after a checkpoint and a verification of it (so
    each chain table has rows to copy)."""
    backend = sqlite_backend(db)
    await backend.engine.open()
    try:
        point = await backend.chain.checkpoint(time.time(), "before the cut-over")
        assert (await verify_chain(backend.chain, time.time())).ok
        return ChainHead(point.seq, point.head)
    finally:
        await backend.engine.close()


async def test_an_encrypted_store_arrives_still_encrypted_and_reads_back_the_same(
        tmp_path: Path, pg_url: str) -> None:
    keys = Keyring.from_text("k1:" + "QUFB" * 10 + "QUE=", "TEST_KEYS")  # 32 bytes of "A"
    db, now = tmp_path / "tenang.db", time.time()
    await seed(db, now, keys)
    before = await read_back(sqlite_backend(db, keys=keys))

    result = migrate_store(db, pg_url)

    assert result.returncode == 0, result.stderr
    assert printed_counts(result.stdout)["sealing_keys"] == (1, 1)
    conn = await asyncpg.connect(pg_url)
    try:
        stored = await conn.fetch("SELECT key_id, body FROM requests UNION ALL "
                                  "SELECT key_id, payload FROM callbacks")
    finally:
        await conn.close()
    assert {r["key_id"] for r in stored} == {"k1"}
    assert not [r for r in stored if b"kodebooking" in r["body"] or b"status" in r["body"]]
    assert await read_back(pg(pg_url, keys)) == before
    with pytest.raises(SealingError, match="key id 'k1'"):
        await read_back(pg(pg_url))  # the copy needs its key as the file did


async def queue_carries_on(backend: Backend, now: float) -> None:
    """A stopped Tenang's lease is taken over; each booking's next task, and only that,
    is claimed; a request stored now comes after every copied one."""
    [taken] = await backend.queue.take_over_expired(UP, now, "pg-1", now + 60)
    assert taken.lease_owner == "pg-1"
    await deliver(backend, taken, now)
    claimed = await backend.queue.claim_due(UP, now, 100, "pg-1", now + 60)
    # Tasks 1 of the first two bookings are delivered: their task 2 is next, and of the
    # others their task 1; never two of one booking.
    assert sorted(r.body for r in claimed) == sorted(
        task(b, 2 if b < 2 else 1, 0).body for b in range(BOOKINGS))
    for r in claimed:
        await deliver(backend, r, now)
    late = task(0, TASKS + 1, now)
    await enqueue(backend.intake, late)
    claimed = await backend.queue.claim_due(UP, now + 1, 100, "pg-1", now + 60)
    assert task(0, 3, 0).body in {r.body for r in claimed}
    assert late.id not in {r.id for r in claimed}  # it waits behind the copied tasks


async def deliver(backend: Backend, r: StoredRequest, now: float) -> None:
    await backend.queue.complete_attempt(
        r.id, "pg-1", AttemptRecord(r.attempts + 1, now, 0.1, Verdict.SUCCESS, 200, None,
                                    b"{}"), Transition(Status.SUCCEEDED, "delivered"), now)
    stored = await backend.intake.get(r.id)
    assert stored is not None and stored.status is Status.SUCCEEDED


async def test_a_sqlite_file_being_served_is_refused(tmp_path: Path, pg_url: str) -> None:
    config = write_config(tmp_path)
    db = tmp_path / "data" / "tenang.db"
    served = Serving(config, tmp_path / "serve.out")
    try:
        served.wait_ready()

        refused = migrate_store(db, pg_url)

        assert refused.returncode == 1
        assert one_line_error(refused).startswith(
            "tenang: cannot migrate the store: the SQLite file is open in another process")
        assert await tables_in(pg_url) == 0
        assert served.stop() == 0
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()
    assert migrate_store(db, pg_url).returncode == 0


async def test_a_target_holding_a_store_is_refused(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "tenang.db"
    await seed(db, time.time())
    assert migrate_store(db, pg_url).returncode == 0

    again = migrate_store(db, pg_url)

    assert again.returncode == 2
    assert one_line_error(again).startswith(
        "tenang: cannot migrate the store: the PostgreSQL database already holds a Tenang "
        "store (rows in users, sessions, requests,")
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM requests") == BOOKINGS * TASKS
    finally:
        await conn.close()


@pytest.mark.slow
async def test_a_100k_row_store_migrates_with_equal_counts_and_a_working_queue(
        tmp_path: Path, pg_url: str) -> None:
    """The acceptance test of issue 13 (scope 4), on bench/scale_store.py's store."""
    db, n = tmp_path / "tenang.db", 100_000
    build(db, n)
    started = time.monotonic()

    result = migrate_store(db, pg_url)

    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    counts = printed_counts(result.stdout)
    assert counts["requests"] == (n, n) and len(counts) == len(TABLES), result.stdout
    assert "MISMATCH" not in result.stdout
    print(f"migrate-store of {n} requests: {took:.1f} s")
    assert await out_of_seq_order(pg_url) == 0
    # The planner knows the copied tables: a claim on a big copied queue uses its index.
    assert not {t.name for t in TABLES} & await unanalyzed(pg_url)
    backend = pg(pg_url)
    await backend.engine.open()
    try:
        now = time.time()
        assert await backend.intake.count_queued(UP) == n
        [first] = await backend.queue.claim_due(UP, now, 1, "pg-1", now + 60)
        assert b'"SCLS00000000"' in first.body  # the oldest, as on SQLite
        await deliver(backend, first, now)
        assert await backend.intake.count_queued(UP) == n - 1
    finally:
        await backend.engine.close()
