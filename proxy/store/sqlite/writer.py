"""One writer thread per SQLite database, committing in groups.

Handlers and the relay submit operations; the thread takes everything that is waiting,
runs it in one transaction, commits once (one fsync), then resolves every waiting
future with a single hop back to the event loop. Inserts of new requests are batched
into one ``executemany``. A failing operation does not fail its neighbours: the batch
is rolled back and replayed in one transaction with a savepoint per operation, so only
the failing one is undone and the rest still commit together (one fsync, not one each:
a SIMRS resending the same booking must not slow intake for everyone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.store.errors import DuplicateKey, StoreError, StoreFull, StoreUnavailable

Op = Callable[[sqlite3.Connection], Any]
InsertRow = tuple[Any, ...]
# Runs in the same transaction right after rows were inserted (the store counts them).
AfterInsert = Callable[[sqlite3.Connection, Sequence[InsertRow]], None]
Result = tuple["_Job", Any, BaseException | None]

MAX_BATCH = 2048


def translate(exc: sqlite3.Error) -> StoreError:
    """Map a driver error to the domain error whose reason a client may see."""
    text = str(exc).lower()
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text or "disk full" in text:
        return StoreFull(str(exc))
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        return StoreUnavailable(str(exc))
    if code == sqlite3.SQLITE_CANTOPEN or "unable to open" in text:
        return StoreUnavailable(str(exc))
    if isinstance(exc, sqlite3.IntegrityError) and "requests.dedup_key" in text:
        return DuplicateKey(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "i/o" in text:
        return StoreUnavailable(str(exc))
    return StoreError(str(exc))


class _TransactionLost(Exception):
    """A failing statement made SQLite roll back the whole transaction."""


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[Any]
    op: Op | None = None
    insert: InsertRow | None = None


class SqliteWriter:
    """Owns the only write connection. ``start()`` then ``submit``/``insert``; ``stop()``."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], insert_sql: str,
                 after_insert: AfterInsert | None = None) -> None:
        self._connect = connect
        self._insert_sql = insert_sql
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

    def insert(self, row: InsertRow) -> asyncio.Future[Any]:
        job = _Job(self._future(), insert=row)
        self._jobs.put(job)
        return job.future

    def submit(self, op: Op) -> asyncio.Future[Any]:
        job = _Job(self._future(), op=op)
        self._jobs.put(job)
        return job.future

    def _run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            self._fail_all(translate(exc))
            return
        try:
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
        finally:
            conn.close()

    def _fail_all(self, error: StoreError) -> None:
        """The writer cannot work at all: refuse new jobs and fail every waiting one."""
        self._fatal = error
        failed: list[Result] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                failed.append((job, None, error))
        self._deliver(failed)

    def _run_batch(self, conn: sqlite3.Connection,
                   batch: Sequence[_Job]) -> list[Result]:
        inserts = [j for j in batch if j.insert is not None]
        rows = [j.insert for j in inserts if j.insert is not None]
        ops = [j for j in batch if j.op is not None]
        began = _begin(conn, batch)
        if began is not None:
            return began
        try:
            if inserts:
                conn.executemany(self._insert_sql, rows)
                if self._after_insert is not None:
                    self._after_insert(conn, rows)
            results: list[Result] = [(j, j.op(conn), None) for j in ops if j.op is not None]
            conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(conn)
            if len(batch) == 1:
                return [(batch[0], None, _wrap(exc))]
            return self._replay(conn, batch)
        done: list[Result] = [(j, None, None) for j in inserts]
        return done + results

    def _replay(self, conn: sqlite3.Connection, batch: Sequence[_Job]) -> list[Result]:
        """The batch again, in arrival order, each job in its own savepoint."""
        results: list[Result] = []
        began = _begin(conn, batch)
        if began is not None:
            return began
        try:
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    value = None
                    if job.op is not None:
                        value = job.op(conn)
                    else:
                        conn.execute(self._insert_sql, job.insert or ())
                        if self._after_insert is not None:
                            self._after_insert(conn, [job.insert or ()])
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite gave up the whole transaction (e.g. disk full).
                        raise _TransactionLost from exc
                    conn.execute("ROLLBACK TO job")
                    results.append((job, None, _wrap(exc)))
                else:
                    results.append((job, value, None))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
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


def _begin(conn: sqlite3.Connection, batch: Sequence[_Job]) -> list[Result] | None:
    """Take the write lock; if it cannot be had (locked past the busy timeout, file
    gone), every job fails at once with why: nothing was tried, so replaying the batch
    job by job would only wait out the busy timeout once per job."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        error = translate(exc)
        return [(job, None, error) for job in batch]
    return None


def _rollback(conn: sqlite3.Connection) -> None:
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


def connect_writer(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
