"""The SQLite database every SQLite role object shares: its writer and its reader.

Writes go through ``SqliteWriter`` (one thread, group commit); reads use a separate
aiosqlite connection, which WAL lets run beside the writer. This object is also the
backend's ``Engine``: open, close, the writability check and the free disk.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from proxy.store.errors import StoreUnavailable
from proxy.store.sealing import PLAINTEXT, KeyRecord, Keyring
from proxy.store.sqlite.chain_switch import note_chain_switch
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.read_only import in_snapshot
from proxy.store.sqlite.rows import count_inserted
from proxy.store.sqlite.schema import migrate
from proxy.store.sqlite.writer import (
    ChainedConnection,
    InsertLink,
    InsertRow,
    SqliteWriter,
    connect_writer,
    translate,
)

T = TypeVar("T")

CHAIN_SQL = (QUERIES["chain_head"], QUERIES["append_chain"])

# SQLite's defaults: checkpoint at 1000 pages of 4 KiB in the WAL (wal_autocheckpoint).
WAL_LIMIT = 1000 * 4096


def sqlite_free_bytes(db_path: Path) -> int:
    """Free bytes on the database's disk, less room for SQLite's WAL to grow into.

    SQLite appends every commit to the WAL and reuses the file from its start only after
    a checkpoint, which runs once the WAL holds WAL_LIMIT bytes; the checkpoint then
    copies the pages into the database file, which grows too. So up to WAL_LIMIT more
    may be taken at any moment without a new byte admitted: not free for intake. Counted
    out, the floor stays the relay's, to record outcomes in."""
    return shutil.disk_usage(db_path.parent).free - WAL_LIMIT


def check_keys(conn: sqlite3.Connection, keys: Keyring, now: float) -> None:
    """Refuse ``keys`` unless they fit the key ids this store has sealed under
    (``Keyring.check``: SealingError), then record the current one if it is new."""
    keys.check(KeyRecord(r[0], bytes(r[1]), r[2])
               for r in conn.execute(QUERIES["sealing_keys"]).fetchall())
    record = keys.check_record()
    if record is not None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(QUERIES["add_sealing_key"], (record.key_id, record.check, now))
        conn.execute("COMMIT")


class SqliteDb:
    def __init__(self, path: Path, busy_timeout_ms: int = 5_000, chain: bool = True,
                 keys: Keyring = PLAINTEXT) -> None:
        """``chain``: extend the hash chain as the store writes (``[audit] chain``);
        ``keys``: what every role object seals and opens bodies with."""
        self.path = path
        self.keys = keys  # every role object seals and opens bodies with these
        self._busy_timeout_ms = busy_timeout_ms
        self.chain = chain  # whether role objects compute links for their writes
        self._writer: SqliteWriter | None = None
        self._reader: aiosqlite.Connection | None = None
        self._snapshot_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_writer(self.path, self._busy_timeout_ms)
            try:
                migrate(conn)
                conn.head_sql, conn.append_sql = CHAIN_SQL
                note_chain_switch(conn, self.chain, time.time())
                check_keys(conn, self.keys, time.time())
            finally:
                conn.close()
            self._reader = await aiosqlite.connect(self.path)
            await self._reader.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc.strerror}") from exc
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        writer = SqliteWriter(lambda: connect_writer(self.path, self._busy_timeout_ms),
                              (QUERIES["insert_request"], QUERIES["insert_request_chained"]),
                              count_inserted,
                              CHAIN_SQL, self.chain)
        writer.start(asyncio.get_running_loop())
        self._writer = writer

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if writer is not None:
            await writer.stop()
        if reader is not None:
            await reader.close()

    async def check_writable(self) -> None:
        await self.write(lambda c: c.execute(QUERIES["check_writable"], (time.time(),)))

    def free_bytes(self) -> int:
        return sqlite_free_bytes(self.path)

    def _w(self) -> SqliteWriter:
        if self._writer is None:
            raise StoreUnavailable("store is closed")
        return self._writer

    async def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreUnavailable("store is closed")
        try:
            async with self._reader.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def snapshot(self, *statements: str) -> list[list[sqlite3.Row]]:
        """Several reads that see one consistent state (one read transaction)."""
        if self._reader is None:
            raise StoreUnavailable("store is closed")
        async with self._snapshot_lock:
            reader = self._reader
            try:
                await reader.execute("BEGIN")
                try:
                    results = []
                    for sql in statements:
                        async with reader.execute(sql) as cur:
                            results.append(list(await cur.fetchall()))
                    return results
                finally:
                    await reader.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    async def read_snapshot(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read`` in a worker thread, on a read-only connection of its own, in one read
        transaction: for reads of several dependent statements that must see one state."""
        try:
            return await asyncio.to_thread(in_snapshot, self.path,
                                           self._busy_timeout_ms, read)
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def write(self, op: Callable[[ChainedConnection], T]) -> T:
        """Run ``op`` in the writer's next group commit; its result once committed."""
        result: T = await self._w().submit(op)
        return result

    def insert(self, row: InsertRow, link: InsertLink | None = None) -> asyncio.Future[Any]:
        """Insert one request row (``insert_request``) in the group commit's executemany,
        with its request's chain entry (``link``, None with the chain off); a plain
        function returning the writer's future, so intake awaits nothing more."""
        return self._w().insert(row, link)
