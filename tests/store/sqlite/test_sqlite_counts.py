"""The counts SQLite keeps per (upstream, status, SEP) with triggers (schema v8) always
equal a count of the rows: after every kind of change the store makes, and after
migrating a database that already holds requests."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.errors import DuplicateKey
from proxy.store.sqlite import sqlite_backend
from proxy.store.sqlite.schema import MIGRATIONS, migrate, statements
from tests.store.sqlite import insert
from tests.store.test_contract import OTHER, T0, UP, attempt, put, req
from tests.store_support import hand_back

Counts = dict[tuple[str, str, int], int]

SEP_PATH = "/vclaim-rest/SEP/2.0/insert"


def kept(db: Path) -> Counts:
    with sqlite3.connect(db) as c:
        return {(u, st, sep): n for u, st, sep, n in
                c.execute("SELECT upstream, status, sep, n FROM request_counts WHERE n != 0")}


def counted(db: Path) -> Counts:
    with sqlite3.connect(db) as c:
        return {(u, st, sep): n for u, st, sep, n in c.execute(
            "SELECT upstream, status, "
            "IFNULL(endpoint LIKE 'vclaim.sep%' OR path LIKE '%/sep/%', 0), "
            "COUNT(*) FROM requests GROUP BY 1, 2, 3")}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Backend]:
    s = sqlite_backend(tmp_path / "tenang.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_counts_follow_every_change_the_store_makes(store: Backend,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "tenang.db"
    a, b, c, d = await put(store, req(1, ordering_key="k1"), req(2, ordering_key="k1"),
                           req(3, coalesce_key="c"), req(4, coalesce_key="c"))
    sep, = await put(store, req(5, upstream=OTHER, path=SEP_PATH))
    await put(store, req(6, upstream=OTHER, endpoint="vclaim.sep.insert"))
    assert kept(db) == counted(db) == {(UP, "pending", 0): 4, (OTHER, "pending", 1): 2}

    await store.queue.supersede([c.id], d.id, T0 + 10)  # c cancelled
    claimed = await store.queue.claim_due(UP, T0 + 10, 10, "w1", T0 + 20)
    assert {r.id for r in claimed} == {a.id, d.id}
    await store.queue.complete_attempt(a.id, "w1", attempt(1, T0 + 11, Verdict.PERMANENT),
                                       Transition(Status.FAILED, "400"), T0 + 12)
    assert [r.id for r in await store.queue.refresh_holds(UP, T0 + 13)] == [b.id]
    await store.queue.take_over_expired(UP, T0 + 30, "w2", T0 + 60)  # d, leased anew
    await store.queue.complete_attempt(d.id, "w2", attempt(1, T0 + 31, Verdict.SUCCESS),
                                       Transition(Status.SUCCEEDED, "200"), T0 + 32)
    await store.operator.transition(a.id, Status.FAILED, Transition(Status.PENDING, "retry",
                                                                    T0 + 33),
                                    T0 + 33)
    await store.queue.refresh_holds(UP, T0 + 34)  # b released
    await store.queue.claim_due(OTHER, T0 + 40, 1, "w1", T0 + 50)
    await hand_back(store, sep.id, "w1", T0 + 41)

    assert kept(db) == counted(db) == {
        (UP, "pending", 0): 2, (UP, "cancelled", 0): 1, (UP, "succeeded", 0): 1,
        (OTHER, "pending", 1): 2}
    assert await store.intake.count_queued(UP) == 2
    assert await store.log.sep_open_counts() == {OTHER: 2}


async def test_a_rolled_back_change_leaves_the_counts_alone(store: Backend,
                                                            tmp_path: Path) -> None:
    db = tmp_path / "tenang.db"
    await put(store, req(1, dedup_key="same"))
    with pytest.raises(DuplicateKey):
        await insert(store, req(2, dedup_key="same"))
    assert kept(db) == counted(db) == {(UP, "pending", 0): 1}


async def test_inserts_committed_together_are_counted_and_a_refused_one_is_not(
        store: Backend, tmp_path: Path) -> None:
    db = tmp_path / "tenang.db"
    await put(store, req(0, dedup_key="taken"))
    # One group commit: a duplicate among them makes the writer replay the group, each
    # insert in its own savepoint; the refused one's count is rolled back with it.
    batch = [req(i, dedup_key="taken" if i == 5 else None,
                 path=SEP_PATH if i % 2 else "/a") for i in range(1, 11)]
    results = await asyncio.gather(*(insert(store, r) for r in batch),
                                   return_exceptions=True)
    assert [type(r).__name__ for r in results].count("DuplicateKey") == 1
    assert kept(db) == counted(db) == {(UP, "pending", 0): 6, (UP, "pending", 1): 4}


def test_migrating_a_filled_database_counts_what_it_holds(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db, isolation_level=None) as c:
        for script in MIGRATIONS[:7]:
            for statement in statements(script):
                c.execute(statement)
        c.execute("PRAGMA user_version=7")
        for i, (upstream, status, path) in enumerate([
                (UP, "pending", "/a"), (UP, "pending", "/a"), (UP, "dead", "/a"),
                (OTHER, "in_flight", SEP_PATH), (OTHER, "succeeded", "/b")]):
            c.execute("INSERT INTO requests (id, upstream, method, path, query, headers, body,"
                      " received_at, status, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (f"id{i}", upstream, "POST", path, "", "[]", b"", T0 + i, status, T0))
        assert migrate(c) == len(MIGRATIONS)
        c.execute("UPDATE requests SET status='failed' WHERE id='id0'")
    assert kept(db) == counted(db) == {
        (UP, "pending", 0): 1, (UP, "failed", 0): 1, (UP, "dead", 0): 1,
        (OTHER, "in_flight", 1): 1, (OTHER, "succeeded", 0): 1}


def test_a_trigger_body_is_one_statement() -> None:
    script = "CREATE TABLE t (x); CREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT 1; " \
             "SELECT 2; END;\n  "
    assert statements(script) == [
        "CREATE TABLE t (x);",
        "CREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;"]
