"""The SQLite writer extends the hash chain inside its group commit: no commit of its
own, and a job undone in a replay takes its chain links with it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from proxy.ops.audit_chain import verify_chain
from proxy.store import chain
from proxy.store.errors import DuplicateKey, StoreError, StoreUnavailable
from proxy.store.sqlite import SqliteDb, sqlite_backend_on
from proxy.store.sqlite.chain_rows import entries_after, head_at
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.read_only import in_snapshot
from proxy.store.sqlite.writer import ChainedConnection, SqliteWriter
from tests.store.sqlite import test_sqlite as base
from tests.store.sqlite.test_sqlite import T0, counted, req

db_path, opened = base.db_path, base.opened  # the fixtures


def chain_entries(path: Path) -> list[chain.ChainEntry]:
    """Every entry, the chain table's and the request rows' own (schema v14)."""
    return in_snapshot(path, 2_000, lambda conn: entries_after(conn, 0, 1_000_000))


def chain_rows(path: Path) -> list[tuple[int, str, str]]:
    return [(e.seq, e.kind.value, e.ref) for e in chain_entries(path)]


def _chained(statement: str) -> bool:
    """A statement that extends the chain: the chain table's INSERT, or the requests'
    INSERT that carries each row's entry."""
    return "INSERT INTO CHAIN" in statement or (
        "INSERT INTO REQUESTS" in statement and "CHAIN_SEQ" in statement)


async def test_the_chain_is_extended_in_the_group_commit_without_a_commit_of_its_own(
        db_path: Path, opened: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, counter = await counted(db_path, opened, monkeypatch)
    counter.reset()
    requests = [req(i / 1000) for i in range(300)]

    await asyncio.gather(*(store.intake.enqueue_or_match(r, 0.0, T0) for r in requests))

    assert 1 <= counter.commits < 30, f"{counter.commits} commits for 300 enqueues"
    # Each batch: BEGIN, its rows with their chain entries, COMMIT; never a COMMIT in
    # between.
    kinds = ["chain" if _chained(s) else s for s in counter.statements
             if _chained(s) or s in ("BEGIN IMMEDIATE", "COMMIT")]
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
    """The chain is extended with the group's rows: when that fails, no enqueue may
    return (the gateway's 202) for a row that was rolled back with it. Triggers refusing
    chain entries, in the rows (the group's INSERT) and in the chain table (where the
    replay of a failed group links them), stand in for the failing append."""
    store = await opened(db_path)
    await store.intake.enqueue_or_match(req(0), 0.0, T0)
    other = base.raw(db_path)
    other.execute("CREATE TRIGGER no_chain BEFORE INSERT ON chain "
                  "BEGIN SELECT RAISE(ABORT, 'chain append refused'); END")
    other.execute("CREATE TRIGGER no_row_chain BEFORE INSERT ON requests "
                  "WHEN NEW.chain_seq IS NOT NULL "
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
        other.execute("DROP TRIGGER no_row_chain")
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


async def _each_enqueued(store: Any, requests: list[Any]) -> None:
    await asyncio.gather(*(store.intake.enqueue_or_match(r, 0.0, T0) for r in requests))


async def test_entries_read_alike_from_every_seq_wherever_they_are_kept(db_path: Path) -> None:
    """Schema v14: a request stored by intake keeps its entry in its row; a replayed
    group's, audit entries and tombstones are in the chain table; rows stored with the
    chain off have none. Read from any seq on, they are one chain."""
    async def session(chain_on: bool, step: Callable[[Any, SqliteDb], Awaitable[None]]
                      ) -> None:
        db = SqliteDb(db_path, chain=chain_on)
        store = sqlite_backend_on(db)
        await store.open()
        try:
            await step(store, db)
        finally:
            await store.close()

    resent = "antrean:add:KB-AGAIN"

    async def first(store: Any, db: SqliteDb) -> None:
        await _each_enqueued(store, [req(i / 1000) for i in range(6)])
        await store.audit.audit("admin", "login", None, None, T0)
        # A resubmission in the group: it fails, and the group is replayed job by job,
        # linking each request's entry in the chain table.
        await store.intake.enqueue_or_match(dataclasses.replace(req(1), dedup_key=resent),
                                            0.0, T0)
        await _each_enqueued(store, [dataclasses.replace(req(2 + i / 1000), dedup_key=(
            resent if i == 2 else None)) for i in range(5)])

    async def second(store: Any, db: SqliteDb) -> None:
        await _each_enqueued(store, [req(3 + i / 1000) for i in range(4)])

    async def third(store: Any, db: SqliteDb) -> None:
        await _each_enqueued(store, [req(4 + i / 1000) for i in range(5)])
        assert (await verify_chain(store.chain, T0 + 8)).ok
        marked.extend(e for e in chain_entries(db_path) if e.kind == "request")
        del marked[:2], marked[2:]
        assert await store.chain.mark_purged(chain.Kind.REQUEST, [e.ref for e in marked],
                                             T0 + 9) == 2

    marked: list[chain.ChainEntry] = []

    await session(True, first)
    await session(False, second)
    await session(True, third)

    conn = base.raw(db_path)
    try:
        kept = conn.execute("SELECT count(*) FROM requests WHERE chain_seq IS NOT NULL"
                            ).fetchone()[0]
        elsewhere = conn.execute("SELECT count(*) FROM chain WHERE kind='request'"
                                 ).fetchone()[0]
        unchained = conn.execute("SELECT count(*) FROM requests WHERE chain_seq IS NULL"
                                 ).fetchone()[0]
        assert kept >= 8 and elsewhere >= 4 and unchained >= 4 + 2  # off; tombstoned
        full = entries_after(conn, 0, 1000)
        assert [e.seq for e in full] == list(range(1, len(full) + 1))
        for after in range(len(full) + 1):
            assert entries_after(conn, after, 3) == full[after:after + 3]
            assert head_at(conn, after + 1) == (full[after].head if after < len(full)
                                                else None)
        assert tuple(conn.execute(QUERIES["chain_head"]).fetchone()) == (
            full[-1].seq, full[-1].head)
    finally:
        conn.close()
    db = SqliteDb(db_path)
    store = sqlite_backend_on(db)
    await store.open()
    try:
        # Marked without a purge: the walk reads the moved entries as tombstones over
        # records still stored, as it must.
        broken = (await verify_chain(store.chain, T0 + 10)).broken
        assert broken is not None and (broken.seq, broken.ref) == (marked[0].seq,
                                                                   marked[0].ref)
        assert "marked purged, but its record is still stored" in broken.problem
        assert await store.chain.chain_head() == chain.ChainHead(full[-1].seq, full[-1].head)
    finally:
        await store.close()


async def test_a_writer_continues_the_chain_another_connection_extended_meanwhile(
        db_path: Path) -> None:
    """The writer keeps the head it committed and reads it again only when another
    connection has committed since (PRAGMA data_version): another process's entries,
    written between two group commits, are linked after, not forked from."""
    serving = SqliteDb(db_path)
    store = sqlite_backend_on(serving)
    await store.open()
    try:
        await _each_enqueued(store, [req(i / 1000) for i in range(3)])
        other = sqlite_backend_on(SqliteDb(db_path))  # as `tenang user add` would
        await other.open()
        try:
            await other.audit.audit("admin", "user_add", "clerk", None, T0 + 1)
            await other.intake.enqueue_or_match(req(1.5), 0.0, T0 + 1)
        finally:
            await other.close()
        await _each_enqueued(store, [req(2 + i / 1000) for i in range(3)])
        stored = chain_entries(db_path)
        assert [e.seq for e in stored] == list(range(1, 9))
        assert (await verify_chain(store.chain, T0 + 2)).ok
    finally:
        await store.close()
