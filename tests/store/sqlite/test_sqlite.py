"""SQLite-specific guarantees: durability, pragmas, migrations, group commit, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.errors import DuplicateKey, StoreError, StoreFull, StoreUnavailable
from proxy.store.records import AttemptRecord, NewRequest, RequestFilter
from proxy.store.sqlite import db as sqlite_db
from proxy.store.sqlite import sqlite_backend
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.schema import MIGRATIONS
from proxy.store.sqlite.writer import ChainedConnection, SqliteWriter, connect_writer
from tests.store.sqlite import insert

T0 = 1_700_000_000.0
UP = "antrean"


def req(i: float, body: bytes = b'{"kodebooking": "A-1"}') -> NewRequest:
    at = T0 + i
    return NewRequest(
        id=new_request_id(at), upstream=UP, method="POST", path="/antreanrs/antrean/add",
        query=f"n={i}", headers=(("X-Cons-ID", "1"), ("X-Dup", "a"), ("X-Dup", "b")),
        body=body, received_at=at,
    )


def raw(path: Path) -> sqlite3.Connection:
    """A separate connection, as another process would open the file."""
    return sqlite3.connect(path, isolation_level=None)


def count_rows(path: Path) -> int:
    conn = raw(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tenang.db"


@pytest.fixture
async def opened() -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await opened(path, ...)`` opens a SQLite backend; all are closed at the end."""
    stores: list[Backend] = []

    async def open_store(path: Path, busy_timeout_ms: int = 2_000) -> Backend:
        store = sqlite_backend(path, busy_timeout_ms)
        stores.append(store)
        await store.open()
        return store

    yield open_store
    for store in stores:
        await store.close()


class CommitCounter:
    """Wraps ``connect_writer`` so every connection it makes counts the COMMITs it runs."""

    def __init__(self, max_page_count: bool = False) -> None:
        self.statements: list[str] = []
        self._lock = threading.Lock()
        self._max_page_count = max_page_count

    def _trace(self, sql: str) -> None:
        with self._lock:
            self.statements.append(sql.strip().upper())

    @property
    def commits(self) -> int:
        with self._lock:
            return self.statements.count("COMMIT")

    def reset(self) -> None:
        with self._lock:
            self.statements.clear()

    def connect(self, path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
        conn = connect_writer(path, busy_timeout_ms)
        if self._max_page_count:
            # The file may not grow any more: as if the disk holding it were full.
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={pages}")
        conn.set_trace_callback(self._trace)
        return conn


# --- durability and configuration ------------------------------------------------------------


async def test_data_survives_close_and_reopen(db_path: Path, opened: Any) -> None:
    first = await opened(db_path)
    a, b, c = req(1, body=b"\x00\xff\xfe binary"), req(2), req(3)
    for r in (a, b, c):
        await insert(first, r)
    await first.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)
    await first.queue.complete_attempt(
        a.id, "w1",
        AttemptRecord(1, T0 + 11, 0.5, Verdict.TRANSIENT, 503, "upstream 503", b"\xffbusy"),
        Transition(Status.PENDING, "upstream 503", T0 + 20), T0 + 12)
    await first.operator.transition(c.id, Status.PENDING,
                                    Transition(Status.CANCELLED, "cancelled by operator"), T0 + 13)
    before = {r.id: await first.log.get(r.id) for r in (a, b, c)}
    attempts_before = await first.log.attempts(a.id)
    summary_before = await first.log.summary()
    await first.close()

    second = await opened(db_path)

    assert {r.id: await second.log.get(r.id) for r in (a, b, c)} == before
    assert before[a.id] is not None
    assert before[a.id].body == b"\x00\xff\xfe binary"
    assert before[a.id].headers == a.headers
    assert await second.log.attempts(a.id) == attempts_before
    assert len(attempts_before) == 1
    assert await second.log.summary() == summary_before
    page = await second.log.find_requests(RequestFilter(), limit=10, cursor=None)
    assert [r.id for r in page.items] == [c.id, b.id, a.id]


async def test_enqueue_is_committed_when_it_returns(db_path: Path, opened: Any) -> None:
    store = await opened(db_path)
    r = req(1)

    await insert(store, r)

    conn = raw(db_path)
    try:
        row = conn.execute("SELECT status, body FROM requests WHERE id=?", (r.id,)).fetchone()
    finally:
        conn.close()
    assert row == ("pending", r.body)


async def test_wal_mode_and_synchronous_full(db_path: Path, opened: Any) -> None:
    await opened(db_path)

    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    writer = connect_writer(db_path, 1_000)
    try:
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 1_000
    finally:
        writer.close()


async def counted(db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch,
                  **options: Any) -> tuple[Backend, CommitCounter]:
    """An opened store whose writer connection counts the statements it runs."""
    counter = CommitCounter()
    monkeypatch.setattr(sqlite_db, "connect_writer", counter.connect)
    return await opened(db_path, **options), counter


async def test_store_writes_through_connect_writer(
    db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pragmas checked above are the ones the store's writer really runs with."""
    store, counter = await counted(db_path, opened, monkeypatch)
    counter.reset()

    await insert(store, req(1))

    assert counter.commits == 1


async def test_migrations_are_idempotent(db_path: Path, opened: Any) -> None:
    first = await opened(db_path)
    await first.open()  # a second open of the same store is a no-op
    r = req(1)
    await insert(first, r)
    await first.close()

    second = await opened(db_path)

    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        conn.close()
    assert await second.log.get(r.id) is not None
    await insert(second, req(2))
    assert count_rows(db_path) == 2


async def test_newer_schema_is_refused(db_path: Path, opened: Any) -> None:
    db_path.parent.mkdir(parents=True)
    conn = raw(db_path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer"):
        await opened(db_path)

    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        conn.close()


# --- group commit ----------------------------------------------------------------------------


async def test_concurrent_enqueues_share_commits(
    db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, counter = await counted(db_path, opened, monkeypatch)
    counter.reset()
    requests = [req(i / 1000) for i in range(500)]

    results = await asyncio.gather(*(insert(store, r) for r in requests))

    assert results == [None] * 500
    assert count_rows(db_path) == 500
    assert 1 <= counter.commits < 50, f"{counter.commits} commits for 500 enqueues"
    page = await store.log.find_requests(RequestFilter(status=Status.PENDING, upstream=UP),
                                         limit=1000, cursor=None)
    assert sorted(r.id for r in page.items) == sorted(r.id for r in requests)


async def test_a_duplicate_in_a_group_does_not_cost_its_neighbours_a_commit_each(
    db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, counter = await counted(db_path, opened, monkeypatch)
    resent = "antrean:add:KB-RESENT"
    await insert(store, dataclasses.replace(req(0), dedup_key=resent))
    counter.reset()
    # A SIMRS resending one booking five times among 495 new ones, all arriving together.
    requests = [dataclasses.replace(req(i / 1000 + 1),
                                    dedup_key=resent if i % 100 == 50 else None)
                for i in range(500)]

    results = await asyncio.gather(*(insert(store, r) for r in requests),
                                   return_exceptions=True)

    duplicates = [i for i, r in enumerate(results) if isinstance(r, DuplicateKey)]
    assert duplicates == [50, 150, 250, 350, 450]
    assert [r for r in results if not isinstance(r, DuplicateKey)] == [None] * 495
    assert count_rows(db_path) == 496
    assert 1 <= counter.commits < 50, f"{counter.commits} commits for 500 enqueues"


def started_writer(db_path: Path) -> SqliteWriter:
    """The writer alone, on a fresh database with one table ``t (x INTEGER PRIMARY KEY)``
    whose batched insert is ``INSERT INTO t (x) VALUES (?)`` (and its chain columns,
    NULL: the jobs add no links)."""
    db_path.parent.mkdir(parents=True)
    setup = connect_writer(db_path, 2_000)
    setup.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, chain_seq, chain_leaf, chain_head)")
    setup.close()
    writer = SqliteWriter(lambda: connect_writer(db_path, 2_000),
                          ("INSERT INTO t (x) VALUES (?)",
                           "INSERT INTO t (x, chain_seq, chain_leaf, chain_head) VALUES (?,?,?,?)"))
    writer.start(asyncio.get_running_loop())
    return writer


async def test_failing_op_does_not_fail_its_neighbours(db_path: Path) -> None:
    writer = started_writer(db_path)
    gate = threading.Event()

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (x) VALUES (-1)")
        raise ValueError("boom")

    def good(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (x) VALUES (100)")
        return "ok"

    try:
        # Hold the writer thread so everything below is waiting when it looks again:
        # all of it then runs as one batch.
        held = writer.submit(lambda conn: gate.wait(10))
        futures = [writer.insert((1,)), writer.insert((2,)), writer.submit(bad),
                   writer.insert((3,)), writer.submit(good), writer.insert((1,)),
                   writer.insert((4,))]
    finally:
        gate.set()
    assert await held is True
    results = await asyncio.gather(*futures, return_exceptions=True)
    await writer.stop()

    assert results[:2] == [None, None]
    assert isinstance(results[2], ValueError)
    assert results[3:5] == [None, "ok"]
    assert isinstance(results[5], StoreError)  # duplicate key: only that insert fails
    assert results[6] is None
    conn = raw(db_path)
    try:
        rows = [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]
    finally:
        conn.close()
    assert rows == [1, 2, 3, 4, 100]  # the bad op's own write was rolled back


async def test_failing_enqueue_does_not_fail_concurrent_enqueues(
    db_path: Path, opened: Any
) -> None:
    store = await opened(db_path)
    existing = req(0)
    await insert(store, existing)
    fresh = [req(i) for i in range(1, 20)]

    results = await asyncio.gather(*(insert(store, r) for r in (*fresh[:10], existing,
                                                                  *fresh[10:])),
                                   return_exceptions=True)

    assert isinstance(results[10], StoreError)
    assert [r for i, r in enumerate(results) if i != 10] == [None] * len(fresh)
    for r in fresh:
        assert await store.log.get(r.id) is not None
    assert count_rows(db_path) == 20


async def test_writer_stop_finishes_submitted_jobs(db_path: Path) -> None:
    writer = started_writer(db_path)
    futures = [writer.insert((i,)) for i in range(50)]

    await writer.stop()

    assert await asyncio.gather(*futures) == [None] * 50
    with pytest.raises(StoreUnavailable):
        writer.insert((99,))
    conn = raw(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 50
    finally:
        conn.close()


# --- failures --------------------------------------------------------------------------------


async def test_disk_full_raises_store_full_and_commits_nothing_false(
    db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await opened(db_path)
    kept = req(0)
    await insert(before, kept)
    await before.close()
    monkeypatch.setattr(sqlite_db, "connect_writer",
                        CommitCounter(max_page_count=True).connect)
    store = await opened(db_path)
    big = req(1, body=b"\x00\xff" * 100_000)

    with pytest.raises(StoreFull) as caught:
        await insert(store, big)

    assert "full" in caught.value.reason
    assert await store.log.get(big.id) is None
    assert await store.log.get(kept.id) is not None

    # Mixed with small requests in one group: whatever is reported committed is stored,
    # whatever failed is not.
    mixed = [req(2 + i, body=(b"\x01" * 300_000 if i % 3 == 0 else b"{}")) for i in range(9)]
    results = await asyncio.gather(*(insert(store, r) for r in mixed), return_exceptions=True)
    for r, result in zip(mixed, results, strict=True):
        stored = await store.log.get(r.id)
        if result is None:
            assert stored is not None and stored.body == r.body
        else:
            assert isinstance(result, StoreFull)
            assert stored is None
    assert all(isinstance(results[i], StoreFull) for i in (0, 3, 6))
    await store.close()

    reopened = await opened(db_path)
    for r, result in zip(mixed, results, strict=True):
        assert (await reopened.log.get(r.id) is not None) == (result is None)


async def test_locked_database_raises_unavailable_then_recovers(
    db_path: Path, opened: Any
) -> None:
    store = await opened(db_path, busy_timeout_ms=100)
    locker = raw(db_path)
    blocked, later = req(1), req(2)
    try:
        locker.execute("BEGIN EXCLUSIVE")

        with pytest.raises(StoreUnavailable) as caught:
            await insert(store, blocked)
        assert "unavailable" in caught.value.reason
        with pytest.raises(StoreUnavailable):
            await store.check_writable()
        assert await store.log.get(blocked.id) is None  # reads still work under WAL
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    await insert(store, later)
    await store.check_writable()
    assert await store.log.get(later.id) is not None
    assert await store.log.get(blocked.id) is None
    assert count_rows(db_path) == 1


async def test_a_write_waits_for_another_process_to_let_go_of_the_lock(
    db_path: Path, opened: Any
) -> None:
    """The writer polls for the lock (writer._begin_immediate) instead of SQLite's busy
    handler: a write behind another process's transaction waits for it, within the busy
    timeout, and is stored once the lock is free."""
    store = await opened(db_path, busy_timeout_ms=5_000)
    locker = raw(db_path)
    locker.execute("BEGIN IMMEDIATE")
    writing = asyncio.ensure_future(insert(store, req(1)))
    try:
        done, _ = await asyncio.wait([writing], timeout=0.3)
        assert not done, "the write went through a held lock"
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await asyncio.wait_for(writing, timeout=5)
    assert count_rows(db_path) == 1


async def test_a_locked_database_fails_a_group_at_once_not_a_busy_wait_per_request(
    db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, counter = await counted(db_path, opened, monkeypatch, busy_timeout_ms=100)
    counter.reset()
    locker = raw(db_path)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        results = await asyncio.gather(*(insert(store, req(i)) for i in range(30)),
                                       return_exceptions=True)
        waited = time.monotonic() - started
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    # Each group waits out the busy timeout (0.1 s) once; replaying it job by job would
    # make the last SIMRS in line wait 30 busy timeouts (3 s) for its 503. (The writer
    # polls BEGIN while it waits, so its statements no longer count the waits.)
    assert waited < 1.5, f"{waited:.2f} s of lock waits for 30 enqueues"
    assert counter.commits == 0
    assert count_rows(db_path) == 0


async def test_writer_that_cannot_connect_fails_waiters_instead_of_hanging() -> None:
    def broken_connect() -> ChainedConnection:
        raise sqlite3.OperationalError("unable to open database file")

    writer = SqliteWriter(broken_connect, (QUERIES["insert_request"],
                                           QUERIES["insert_request_chained"]))
    writer.start(asyncio.get_running_loop())

    async def submit_and_wait() -> None:
        # Refused at once, or failed once the thread finds it cannot connect.
        await writer.submit(lambda c: None)

    with pytest.raises(StoreUnavailable, match="unable to open"):
        await asyncio.wait_for(submit_and_wait(), timeout=5)
    with pytest.raises(StoreUnavailable, match="unable to open"):
        writer.submit(lambda c: None)  # once known, later jobs are refused at once
    await writer.stop()


async def test_version_1_database_is_upgraded_keeping_its_rows(db_path: Path,
                                                               opened: Any) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = raw(db_path)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version=1;")
    conn.execute(
        "INSERT INTO requests (id, upstream, method, path, query, headers, body, received_at,"
        " status, next_attempt_at, updated_at) VALUES ('01OLD', 'antrean', 'POST', '/x', '',"
        " '[]', x'7b7d', 1.0, 'dead', NULL, 2.0)")
    conn.commit()
    conn.close()

    store = await opened(db_path)

    old = await store.log.get("01OLD")
    assert old is not None and old.status is Status.DEAD and old.retried_at is None
    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        conn.close()
