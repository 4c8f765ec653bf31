"""The SQLite writer extends the hash chain inside its group commit: no commit of its
own, and a job undone in a replay takes its chain links with it."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any, NoReturn

import pytest

from proxy.ops.audit_chain import verify_chain
from proxy.store import chain
from proxy.store.errors import DuplicateKey, StoreError, StoreUnavailable
from proxy.store.sqlite import SqliteDb, sqlite_backend_on
from proxy.store.sqlite.writer import ChainedConnection, SqliteWriter
from tests.store.sqlite import test_sqlite as base
from tests.store.sqlite.test_sqlite import T0, counted, req

db_path, opened = base.db_path, base.opened  # the fixtures


def chain_rows(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, kind, ref FROM chain ORDER BY seq").fetchall()
    finally:
        conn.close()


async def test_the_chain_is_extended_in_the_group_commit_without_a_commit_of_its_own(
        db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, counter = await counted(db_path, opened, monkeypatch)
    counter.reset()
    requests = [req(i / 1000) for i in range(300)]

    await asyncio.gather(*(store.intake.enqueue_or_match(r, 0.0, T0) for r in requests))

    assert 1 <= counter.commits < 30, f"{counter.commits} commits for 300 enqueues"
    # Each batch: BEGIN, its rows, its chain entries, COMMIT; never a COMMIT in between.
    kinds = ["chain" if "INSERT INTO CHAIN" in s else s for s in counter.statements
             if "INSERT INTO CHAIN" in s or s in ("BEGIN IMMEDIATE", "COMMIT")]
    batches = "".join({"chain": "c", "COMMIT": ")", "BEGIN IMMEDIATE": "("}[k] for k in kinds)
    assert batches.replace("c", "") == "()" * counter.commits
    assert all(part.endswith("c") for part in batches.split(")")[:-1])
    rows = chain_rows(db_path)
    assert [seq for seq, _, _ in rows] == list(range(1, 301))  # one entry per request
    assert sorted(ref for _, kind, ref in rows if kind == "request") == sorted(
        r.id for r in requests)
    assert (await verify_chain(store.chain, T0)).ok


async def test_a_job_undone_in_a_replay_leaves_no_entry_and_its_neighbours_keep_theirs(
        db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = await counted(db_path, opened, monkeypatch)
    resent = "antrean:add:KB-RESENT"
    await store.intake.enqueue_or_match(dataclasses.replace(req(0), dedup_key=resent), 0, T0)
    requests = [dataclasses.replace(req(i / 1000 + 1),
                                    dedup_key=resent if i % 10 == 5 else None)
                for i in range(50)]

    results = await asyncio.gather(
        *(store.intake.enqueue_or_match(r, 0.0, T0) for r in requests),
        return_exceptions=True)

    assert sum(isinstance(r, DuplicateKey) for r in results) == 0  # matched, not refused
    stored = {ref for _, kind, ref in chain_rows(db_path) if kind == "request"}
    new = {r.id for r in requests if r.dedup_key is None}
    assert new <= stored and len(stored) == len(new) + 1  # no entry for the resent ones
    assert (await verify_chain(store.chain, T0)).ok


async def test_a_failing_job_in_a_group_drops_its_links(db_path: Path) -> None:
    db = SqliteDb(db_path)
    store = sqlite_backend_on(db)
    await store.open()

    def failing(c: ChainedConnection) -> None:
        c.add_links([chain.Link(chain.Kind.AUDIT, "999", b"\x00" * 32)])
        raise ValueError("boom")

    try:
        results = await asyncio.gather(
            db.write(failing), store.intake.enqueue_or_match(req(1), 0.0, T0),
            store.audit.audit("admin", "login", None, None, T0), return_exceptions=True)

        assert isinstance(results[0], ValueError) and results[1:] == [None, None]
        assert [kind for _, kind, _ in chain_rows(db_path)] == ["request", "audit"]
        assert (await verify_chain(store.chain, T0)).ok
    finally:
        await store.close()


async def test_a_chain_append_that_fails_fails_every_enqueue_of_its_group_and_stores_none(
        db_path: Path, opened: Any) -> None:
    """The chain is appended after the group's rows, just before COMMIT: when that
    append fails, no enqueue may return (the gateway's 202) for a row that was rolled
    back with it. A trigger refusing chain rows stands in for the failing append."""
    store = await opened(db_path)
    await store.intake.enqueue_or_match(req(0), 0.0, T0)
    other = base.raw(db_path)
    other.execute("CREATE TRIGGER no_chain BEFORE INSERT ON chain "
                  "BEGIN SELECT RAISE(ABORT, 'chain append refused'); END")
    try:
        requests = [req(i / 1000 + 1) for i in range(40)]
        results = await asyncio.gather(
            *(store.intake.enqueue_or_match(r, 0.0, T0) for r in requests),
            return_exceptions=True)

        assert all(isinstance(r, StoreError) for r in results), results
        assert base.count_rows(db_path) == 1  # only the one stored before
    finally:
        other.execute("DROP TRIGGER no_chain")
        other.close()
    assert await store.intake.enqueue_or_match(req(2), 0.0, T0) is None
    assert base.count_rows(db_path) == 2
    assert [seq for seq, _, _ in chain_rows(db_path)] == [1, 2]
    assert (await verify_chain(store.chain, T0)).ok


async def test_a_writer_that_dies_fails_every_enqueue_instead_of_leaving_it_waiting(
        db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error the writer thread does not expect (a bug, an I/O error outside a
    batch's own handling) ends the thread: the group it held and every later enqueue
    must fail (the gateway answers 503), never wait for an answer that cannot come."""
    store = await opened(db_path)

    def broken(self: SqliteWriter, conn: ChainedConnection, batch: Any) -> NoReturn:
        raise RuntimeError("writer bug")

    monkeypatch.setattr(SqliteWriter, "_run_batch", broken)
    results = await asyncio.wait_for(asyncio.gather(
        *(store.intake.enqueue_or_match(req(i / 1000 + 1), 0.0, T0) for i in range(20)),
        return_exceptions=True), timeout=30)

    assert all(isinstance(r, StoreUnavailable) for r in results), results
    with pytest.raises(StoreUnavailable, match="store writer stopped"):
        await asyncio.wait_for(store.intake.enqueue_or_match(req(3), 0.0, T0), timeout=30)
    assert base.count_rows(db_path) == 0
