"""One writer thread per SQLite database, committing in groups.

Handlers and the relay submit operations; the thread takes everything that is waiting,
runs it in one transaction, commits once (one fsync), then resolves every waiting
future with a single hop back to the event loop. Inserts of new requests are batched
into one ``executemany``. The hash chain (``proxy.store.chain``) is extended in the same
transaction: each new request's entry is numbered into its own row as it is inserted
(``number_inserts``), and every other job adds its links to the connection
(``ChainedConnection.links``), which the writer numbers and inserts all at once just
before COMMIT, so a group commit stays one commit and one fsync. A failing operation
does not fail its neighbours: the batch is rolled back and replayed in one transaction
with a savepoint per operation (its links dropped with it), so only the failing one is
undone and the rest still commit together (one fsync, not one each: a SIMRS resending
the same booking must not slow intake for everyone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.store import chain
from proxy.store.errors import (
    DuplicateKey,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreUnavailable,
)

log = logging.getLogger("tenang.store")


class ChainedConnection(sqlite3.Connection):
    """The writer's connection: what the running transaction adds to the hash chain.

    A job appends its links (``add_links``); the writer links them at COMMIT
    (``link_pending``) and forgets them when the job or the batch is rolled back."""

    links: list[chain.Link]
    head_sql: str
    append_sql: str
    # False with ``[audit] chain = false``: links are dropped, the chain is not extended.
    chain_on: bool
    begin_wait_s: float  # how long BEGIN waits for another process's lock (_begin)
    # The chain's head in the running transaction once it was needed (``chain_head_now``),
    # and the head as of this connection's last commit, with the database's
    # ``data_version`` then: while no other connection has committed since, that head is
    # still the head, and the transaction need not read it.
    head: chain.ChainHead | None
    committed_head: chain.ChainHead | None
    committed_version: int
    # The transaction numbered its rows after ``committed_head`` before it had proof that
    # no other connection had committed since (``number_inserts``).
    head_unproven: bool

    def add_links(self, links: Iterable[chain.Link]) -> None:
        """``links`` may be a generator: with the chain off it is never run, so nothing
        is encoded or hashed for it."""
        if self.chain_on:
            self.links.extend(links)


Op = Callable[[ChainedConnection], Any]
InsertRow = tuple[Any, ...]
# What an inserted row adds to the chain (its request's entry), computed before it is
# submitted (on the event loop, while the writer commits the previous group): inside the
# write transaction the encoding and hashing lengthened every group commit, which every
# waiting 202 waits for. The writer numbers it and stores it in the row itself
# (``number_inserts``).
InsertLink = chain.Link
# Runs in the same transaction right after rows were inserted (the store counts them),
# and returns ``PRAGMA data_version`` as its statement read it: the proof
# ``number_inserts`` needs, without a statement of its own.
AfterInsert = Callable[[ChainedConnection, Sequence[InsertRow]], int]
Result = tuple["_Job", Any, BaseException | None]

MAX_BATCH = 2048


def translate(exc: sqlite3.Error) -> StoreError:
    """Map a driver error to the domain error whose reason a client may see."""
    text = str(exc).lower()
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text or "disk full" in text:
        return StoreFull(str(exc))
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        return StoreLocked(str(exc))
    if code == sqlite3.SQLITE_CANTOPEN or "unable to open" in text:
        return StoreUnavailable(str(exc))
    if isinstance(exc, sqlite3.IntegrityError) and "requests.dedup_key" in text:
        return DuplicateKey(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "i/o" in text:
        return StoreUnavailable(str(exc))
    return StoreError(str(exc))


class _TransactionLost(Exception):
    """A failing statement made SQLite roll back the whole transaction."""


class _HeadMoved(Exception):
    """Another connection extended the chain since this one last committed: the rows
    numbered after the head it kept must be numbered again."""


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[Any]
    op: Op | None = None
    insert: InsertRow | None = None
    link: InsertLink | None = None


class SqliteWriter:
    """Owns the only write connection. ``start()`` then ``submit``/``insert``; ``stop()``."""

    def __init__(self, connect: Callable[[], ChainedConnection],
                 insert_sql: tuple[str, str] = ("", ""),
                 after_insert: AfterInsert | None = None,
                 chain_sql: tuple[str, str] = ("", ""), chain_on: bool = True) -> None:
        """``insert_sql``: the INSERT of one row, and the same with the row's chain entry
        (seq, leaf, head) as its last three values (``number_inserts``). ``chain_sql``:
        the statements that read the chain's head and append entries (``link_pending``);
        a writer whose jobs add no links needs neither. ``chain_on`` False: no job's links
        are computed or kept (``[audit] chain = false``)."""
        self._connect = connect
        self._chain_sql = chain_sql
        self._chain_on = chain_on
        self._insert_sql, self._chained_insert_sql = insert_sql
        self._after_insert = after_insert
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._fatal: StoreError | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="tenang-sqlite-writer",
                                        daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Finish every submitted job, then close the connection. Idempotent."""
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def _future(self) -> asyncio.Future[Any]:
        if self._fatal is not None:
            raise self._fatal
        if self._loop is None or self._stopped:
            raise StoreUnavailable("store is closed")
        return self._loop.create_future()

    def insert(self, row: InsertRow, link: InsertLink | None = None) -> asyncio.Future[Any]:
        return self._queued(_Job(self._future(), insert=row, link=link))

    def submit(self, op: Op) -> asyncio.Future[Any]:
        return self._queued(_Job(self._future(), op=op))

    def _queued(self, job: _Job) -> asyncio.Future[Any]:
        self._jobs.put(job)
        if self._fatal is not None:  # the writer failed between _future() and put
            self._drain(self._fatal)
        return job.future

    def _run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            self._fail_all(translate(exc))
            return
        conn.head_sql, conn.append_sql = self._chain_sql
        conn.chain_on = self._chain_on
        batch: list[_Job] = []
        try:
            _poll_for_the_lock(conn)
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        nxt = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._jobs.put(None)  # finish this batch, then stop
                        break
                    batch.append(nxt)
                self._deliver(self._run_batch(conn, batch))
                batch = []
        except Exception as exc:
            # A bug or an I/O error outside a batch's own handling: the thread ends, so
            # every job in hand or waiting fails now rather than hanging its caller.
            log.exception("sqlite writer stopped")
            error = StoreUnavailable(f"store writer stopped: {exc!r}")
            self._deliver([(job, None, error) for job in batch])
            self._fail_all(error)
        finally:
            conn.close()

    def _fail_all(self, error: StoreError) -> None:
        """The writer cannot work at all: refuse new jobs and fail every waiting one."""
        self._fatal = error
        self._drain(error)

    def _drain(self, error: StoreError) -> None:
        failed: list[Result] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                failed.append((job, None, error))
        self._deliver(failed)

    def _run_batch(self, conn: ChainedConnection,
                   batch: Sequence[_Job]) -> list[Result]:
        inserts = [j for j in batch if j.insert is not None]
        rows = [j.insert for j in inserts if j.insert is not None]
        ops = [j for j in batch if j.op is not None]
        began = _begin(conn, batch)
        if began is not None:
            return began
        try:
            if inserts:
                proof = self._after_insert is not None
                conn.executemany(self._chained_insert_sql,
                                 number_inserts(conn, inserts, proven_after=proof))
                if self._after_insert is not None:
                    prove_head(conn, self._after_insert(conn, rows))
            results: list[Result] = [(j, j.op(conn), None) for j in ops if j.op is not None]
            link_pending(conn)
            _commit(conn)
        except _HeadMoved:
            _rollback(conn)
            conn.committed_head = None  # read it again
            return self._run_batch(conn, batch)
        except BaseException as exc:
            _rollback(conn)
            if len(batch) == 1:
                return [(batch[0], None, _wrap(exc))]
            return self._replay(conn, batch)
        done: list[Result] = [(j, None, None) for j in inserts]
        return done + results

    def _replay(self, conn: ChainedConnection, batch: Sequence[_Job]) -> list[Result]:
        """The batch again, in arrival order, each job in its own savepoint."""
        results: list[Result] = []
        began = _begin(conn, batch)
        if began is not None:
            return began
        try:
            for job in batch:
                conn.execute("SAVEPOINT job")
                linked_before = len(conn.links)
                try:
                    value = None
                    if job.op is not None:
                        value = job.op(conn)
                    else:
                        conn.execute(self._insert_sql, job.insert or ())
                        if self._after_insert is not None:
                            self._after_insert(conn, [job.insert or ()])
                        if job.link is not None and conn.chain_on:
                            conn.links.append(job.link)
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite gave up the whole transaction (e.g. disk full).
                        raise _TransactionLost from exc
                    conn.execute("ROLLBACK TO job")
                    del conn.links[linked_before:]
                    results.append((job, None, _wrap(exc)))
                else:
                    results.append((job, value, None))
                conn.execute("RELEASE job")
            link_pending(conn)
            _commit(conn)
        except BaseException:
            # Not a single job's fault (disk full): the slow way, one transaction per
            # job, so whatever still fits is stored.
            _rollback(conn)
            return [r for j in batch for r in self._run_batch(conn, [j])]
        return results

    def _deliver(self, results: list[Result]) -> None:
        assert self._loop is not None
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve, results)


def chain_head_now(conn: ChainedConnection) -> chain.ChainHead:
    """The chain's head in the running transaction (under the write lock, so another
    process's writes, a purge or a CLI, cannot fork the chain). Read from the store only
    when another connection has committed since this one last did (``PRAGMA
    data_version``): otherwise the head this connection last committed is still it."""
    if conn.head is None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if conn.committed_head is not None and version == conn.committed_version:
            conn.head = conn.committed_head
        else:
            row = conn.execute(conn.head_sql).fetchone()
            conn.head = chain.ChainHead(0, chain.GENESIS) if row is None else \
                chain.ChainHead(row[0], bytes(row[1]))
            conn.committed_version = version
    return conn.head


# The chain columns of a row stored without an entry of its own ([audit] chain = false).
_NO_ENTRY = (None, None, None)


def number_inserts(conn: ChainedConnection, inserts: Sequence[_Job], *,
                   proven_after: bool = False) -> list[InsertRow]:
    """The inserted rows with their request entries numbered and linked after the head,
    in order, as their last three values (seq, leaf, head): a request's entry is kept in
    its own row, which intake writes anyway, not in a row of the chain table (measured:
    6.6 more WAL frames per group commit of 31 with a row each, 0.7 in the row;
    bench/RESULTS.md).

    ``proven_after``: the caller proves the head before COMMIT (``prove_head``), so the
    rows may be numbered after the head this connection last committed without reading
    ``data_version`` first: every statement inside the group commit waits for the GIL,
    and every 202 of the group waits for the commit."""
    if not conn.chain_on or all(j.link is None for j in inserts):
        return [(j.insert or ()) + _NO_ENTRY for j in inserts]
    if conn.head is None and proven_after and conn.committed_head is not None:
        conn.head, conn.head_unproven = conn.committed_head, True
    head = chain_head_now(conn)
    seq, previous = head.seq, head.head
    sha256 = hashlib.sha256
    rows = []
    for j in inserts:
        if j.link is None:
            rows.append((j.insert or ()) + _NO_ENTRY)
            continue
        seq += 1
        previous = sha256(previous + j.link.leaf).digest()
        rows.append((j.insert or ()) + (seq, j.link.leaf, previous))
    conn.head = chain.ChainHead(seq, previous)
    return rows


def prove_head(conn: ChainedConnection, data_version: int) -> None:
    """``data_version`` was read in this transaction: if another connection committed
    since this one last did, the head ``number_inserts`` assumed may be stale."""
    if conn.head_unproven:
        if data_version != conn.committed_version:
            raise _HeadMoved
        conn.head_unproven = False


def link_pending(conn: ChainedConnection) -> None:
    """Number and link the transaction's links after the chain's current head and insert
    them into the chain table (one multi-row INSERT)."""
    if not conn.links:
        return
    rows = chain.extend_rows(chain_head_now(conn), conn.links)
    conn.links.clear()
    append_rows(conn, conn.append_sql, rows)
    conn.head = chain.ChainHead(rows[-1][0], rows[-1][4])


def _commit(conn: ChainedConnection) -> None:
    assert not conn.head_unproven, "a group numbered after an unproven head"
    conn.execute("COMMIT")
    if conn.head is not None:
        conn.committed_head, conn.head = conn.head, None


# The most rows one multi-row INSERT carries (6 values each: 768 bound parameters, well
# below SQLite's limit). A group commit's chain rows are one INSERT of exactly their
# number, so up to this many statements are prepared once and kept (``connect_writer``
# caches enough of them).
APPEND_CHUNK = 128


def append_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``sql`` (an INSERT of one row, ``VALUES (?,...)`` last) for every row, as one
    multi-row INSERT per APPEND_CHUNK rows. ``executemany`` steps once per row, and each
    step gives up the GIL and takes it back: inside the open write transaction each wait
    for the event loop to hand it back delays every 202 of the group. Measured under
    bench/intake_bench.py (groups of ~31): linking and appending took 0.48 ms of each
    group commit one row a step (bench/RESULTS.md)."""
    for start in range(0, len(rows), APPEND_CHUNK):
        part = rows[start:start + APPEND_CHUNK]
        conn.execute(_many_rows(sql, len(part)), [v for row in part for v in row])


@functools.lru_cache(maxsize=4 * APPEND_CHUNK)
def _many_rows(sql: str, n: int) -> str:
    values = sql[sql.rindex("("):]
    return sql + ("," + values) * (n - 1)


def _poll_for_the_lock(conn: ChainedConnection) -> None:
    """From here on BEGIN waits for the write lock in ``_begin_immediate``, not in
    SQLite's busy handler (the connection's busy timeout becomes BEGIN's deadline).

    SQLite's handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between
    tries. Behind another process that takes the lock in short turns with rests between
    (``tenang purge`` beside a serving Tenang: a batch, then a rest as long), a waiter
    sleeping 10 ms and more wakes after the lock was free and taken again, and sleeps
    on: one group commit then waits several turns. Measured with a process holding the
    lock 6 ms of every 12: a BEGIN's p99 83-185 ms in SQLite's handler, 22-32 ms
    polling every BUSY_POLL_S (two runs each, 2 loaded cores). Once the transaction
    holds the lock (WAL, BEGIN IMMEDIATE) nothing in it waits for another connection."""
    conn.begin_wait_s = conn.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
    conn.execute("PRAGMA busy_timeout=0")


# The poll interval of a BEGIN waiting for another process's write lock: one try costs
# a few microseconds, so even a long wait costs little CPU.
BUSY_POLL_S = 0.0005


def _begin_immediate(conn: ChainedConnection) -> None:
    deadline = time.monotonic() + conn.begin_wait_s
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code is None or code & 0xFF != sqlite3.SQLITE_BUSY \
                    or time.monotonic() >= deadline:
                raise
        time.sleep(BUSY_POLL_S)


def _begin(conn: ChainedConnection, batch: Sequence[_Job]) -> list[Result] | None:
    """Take the write lock; if it cannot be had (locked past the busy timeout, file
    gone), every job fails at once with why: nothing was tried, so replaying the batch
    job by job would only wait out the busy timeout once per job."""
    conn.links.clear()
    conn.head, conn.head_unproven = None, False
    try:
        _begin_immediate(conn)
    except sqlite3.Error as exc:
        error = translate(exc)
        return [(job, None, error) for job in batch]
    return None


def _rollback(conn: ChainedConnection) -> None:
    conn.links.clear()
    # What this transaction linked is undone: the committed head stands.
    conn.head, conn.head_unproven = None, False
    if conn.in_transaction:
        # If even ROLLBACK fails the connection is unusable; the next BEGIN reports why.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _wrap(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        return translate(exc)
    return exc


def _resolve(results: list[Result]) -> None:
    for job, value, exc in results:
        if job.future.cancelled():
            continue
        if exc is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(exc)


# Prepared statements the writer keeps: the store's own (~100) and append_rows'.
_CACHED_STATEMENTS = 128 + APPEND_CHUNK


def connect_writer(path: Path, busy_timeout_ms: int) -> ChainedConnection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000, factory=ChainedConnection,
                           # Python's default of 128 is too few beside append_rows'.
                           cached_statements=_CACHED_STATEMENTS)
    conn.links = []
    conn.begin_wait_s = 0.0  # SQLite's busy handler waits, until _poll_for_the_lock
    conn.head_sql = conn.append_sql = ""
    conn.chain_on = True
    conn.head = conn.committed_head = None
    conn.committed_version = 0
    conn.head_unproven = False
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
