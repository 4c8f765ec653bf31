"""Copying a single-node SQLite store into an empty PostgreSQL database
(`tenang migrate-store`): every table, in one PostgreSQL transaction, in constant memory,
with the counts checked before it commits.

- **Tenang must be stopped.** The copy reads the SQLite file under SQLite's own exclusive
  lock (``locking_mode=EXCLUSIVE``, then ``BEGIN EXCLUSIVE``). In WAL mode that lock
  cannot be had while any other connection has the file open, a serving Tenang's writer
  and reader included, even idle; and while the copy holds it, a Tenang started on the
  file cannot open it. So "being served" is asked of SQLite itself, not of a pid file
  that a crash leaves behind or a second host never sees.
- **The target must be empty** (no row in any table copied to): a copy into a store that
  already queues requests would interleave two queues' orders and collide on ids. There
  is no ``--force``: the copy is one transaction, so a failed run leaves the target as
  empty as it found it and can simply be run again. The tables are locked (EXCLUSIVE:
  reads go on, writes wait) before they are checked, so an instance already serving on
  the target cannot slip a row in between the check and the copy.
- **Order per key is kept.** PostgreSQL orders a booking's requests by the store-side
  ``requests.seq``; SQLite by id. The copy reads requests in id order and numbers them
  1..N, and the sequence then continues past N, so every new request is later than
  every copied one. The other identities (audit, callbacks, maintenance windows, bulk
  jobs) keep their ids and continue past the highest SQLite ever handed out.
- **Constant memory.** Each table is one ``COPY`` fed from a SQLite cursor a batch at a
  time (asyncpg streams the rows; nothing holds a whole table).
- Requests are copied as they are, leases included: one a stopped Tenang was sending
  is taken over after its lease, as after a crash (``take_over_expired``).
- **The hash chain comes along**, its entries, checkpoints and verifications as they
  are, and PostgreSQL's appends continue after its last entry: `tenang audit verify` on
  the new store checks every record from the SQLite file's first entry on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.store.errors import StoreError, StoreUnavailable
from proxy.store.postgres.errors import DRIVER_ERRORS, translated
from proxy.store.postgres.migrations import Conn, migrate
from proxy.store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS

BATCH = 2_000  # rows read from SQLite at a time
_LOCK_WAIT_MS = 2_000  # a checkpoint may hold SQLite's lock for a moment; a server, forever
_TARGET_LOCK_TIMEOUT = "10s"


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    order_by: str  # SQLite's key order: a copy in the same order on every run
    identity: str | None = None  # the PostgreSQL identity column that continues after it


# In foreign-key order: users before sessions, requests before attempts and callbacks.
TABLES: tuple[Table, ...] = (
    Table("users", "name"),
    Table("sessions", "id"),
    Table("requests", "id", identity="seq"),
    Table("attempts", "request_id, number"),
    Table("callbacks", "id", identity="id"),
    Table("audit_log", "id", identity="id"),
    Table("maintenance_windows", "id", identity="id"),
    Table("bulk_jobs", "id", identity="id"),
    # The hash chain as SQLite kept it, entry for entry: its leaves are recomputed from
    # the copied rows (the same records, the same encoding), so the copy verifies, and a
    # checkpoint taken on the SQLite file before the cut-over still names its head.
    Table("chain", "seq"),
    Table("checkpoints", "id", identity="id"),
    Table("verifications", "id", identity="id"),
    # Sealed values are copied as they are (their associated data names the row, not the
    # backend), with the key ids they need.
    Table("sealing_keys", "key_id"),
)
# SQLite keeps the chain entry of a request stored by intake in the request's row
# (SQLite schema v14, sqlite.chain_rows); PostgreSQL keeps every entry in its chain
# table. Those columns are not copied as columns: their entries join the chain table's.
ROW_CHAIN_COLUMNS = ("chain_seq", "chain_leaf", "chain_head")
_ROW_ENTRIES = ("SELECT chain_seq, 'request', id, chain_leaf, chain_head, NULL, NULL "
                "FROM requests WHERE chain_seq IS NOT NULL ORDER BY rowid")
_ROW_ENTRIES_COUNT = "SELECT count(*) FROM requests WHERE chain_seq IS NOT NULL"
# SQLite's tables that are not copied, and why. A table in neither list stops the copy:
# a new table must be decided on, not silently left behind.
NOT_COPIED: dict[str, str] = {
    "health": "check_writable's probe row, written again by the first check",
    "request_counts": "derived: PostgreSQL's triggers count the requests as they are copied",
    "sqlite_sequence": "SQLite's AUTOINCREMENT record: the identities continue past it",
}


class SourceInUse(StoreUnavailable):
    reason = "the SQLite file is open in another process (a Tenang serving it?)"


class TargetNotEmpty(StoreError):
    reason = "the PostgreSQL database already holds a Tenang store"


class SchemaMismatch(StoreError):
    reason = "the two stores' schemas do not match"


@dataclass(frozen=True, slots=True)
class Count:
    table: str
    sqlite: int
    postgres: int

    @property
    def equal(self) -> bool:
        return self.sqlite == self.postgres


@dataclass(frozen=True, slots=True)
class Report:
    counts: tuple[Count, ...]
    # Requests per (upstream, status): what backpressure, the summary and /metrics read
    # from request_counts, as PostgreSQL's triggers counted them against SQLite's rows.
    queue_counts_equal: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.queue_counts_equal and all(c.equal for c in self.counts)


Progress = Callable[[str, int, float], None]  # table, rows copied, seconds it took


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite store at ``path``, read under an exclusive lock held until it is closed.

    Raises SourceInUse while another process has it open, StoreError if there is no
    such file or its schema is not this Tenang's."""
    if not path.is_file():
        raise StoreError(f"{path}: no such file")
    try:
        # mode=rw: never create a file where the operator mistyped a path.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None,
                               timeout=_LOCK_WAIT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            raise SourceInUse(f"{path}: {exc}: stop Tenang before migrating its store") from exc
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != len(SQLITE_MIGRATIONS):
            raise SchemaMismatch(
                f"{path} is at SQLite schema v{version}, this Tenang's is "
                f"v{len(SQLITE_MIGRATIONS)}: migrate it with the Tenang version that "
                "serves it (`tenang migrate --config FILE`) first")
    except BaseException:
        conn.close()
        raise
    return conn


def _sqlite_tables(src: sqlite3.Connection) -> set[str]:
    rows = src.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def _sqlite_columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in src.execute(f"PRAGMA table_info({table})")]


async def _postgres_columns(conn: Conn, table: str) -> set[str]:
    rows = await conn.fetch("SELECT column_name FROM information_schema.columns "
                            "WHERE table_schema = current_schema() AND table_name = $1",
                            table)
    return {r[0] for r in rows}


async def _check_schemas(src: sqlite3.Connection, conn: Conn) -> dict[str, list[str]]:
    """Each copied table's SQLite columns, after checking PostgreSQL has the same ones
    (plus requests.seq, which the copy fills)."""
    tables = _sqlite_tables(src)
    unknown = sorted(tables - {t.name for t in TABLES} - set(NOT_COPIED))
    if unknown:
        raise SchemaMismatch(f"SQLite tables this copy does not know: {', '.join(unknown)}")
    columns: dict[str, list[str]] = {}
    for table in TABLES:
        mine = [c for c in _sqlite_columns(src, table.name)
                if table.name != "requests" or c not in ROW_CHAIN_COLUMNS]
        theirs = await _postgres_columns(conn, table.name)
        expected = set(mine) | ({"seq"} if table.name == "requests" else set())
        if theirs != expected:
            raise SchemaMismatch(
                f"table {table.name}: SQLite has {sorted(expected)}, "
                f"PostgreSQL {sorted(theirs)}")
        columns[table.name] = mine
    return columns


def _rows(src: sqlite3.Connection, table: Table, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    cursor = src.execute(
        f"SELECT {', '.join(columns)} FROM {table.name} ORDER BY {table.order_by}")
    numbered = table.name == "requests"
    seq = 0
    while batch := cursor.fetchmany(BATCH):
        for row in batch:
            if numbered:
                seq += 1
                yield (*row, seq)
            else:
                yield row
    if table.name == "chain":
        cursor = src.execute(_ROW_ENTRIES)
        while batch := cursor.fetchmany(BATCH):
            yield from batch


def _sqlite_count(src: sqlite3.Connection, table: str) -> int:
    count = int(src.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    if table == "chain":
        count += int(src.execute(_ROW_ENTRIES_COUNT).fetchone()[0])
    return count


async def _require_empty(conn: Conn) -> None:
    names = ", ".join(t.name for t in TABLES)
    await conn.execute(f"SET LOCAL lock_timeout = '{_TARGET_LOCK_TIMEOUT}'")
    await conn.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
    full = [t.name for t in TABLES
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t.name})")]
    if full:
        raise TargetNotEmpty(
            f"rows in {', '.join(full)}: migrate-store copies into an empty database only "
            "(a new database, or drop this one's tables first)")


async def _continue_identities(src: sqlite3.Connection, conn: Conn) -> None:
    """Each identity carries on past the highest value used: for requests.seq the count
    copied, for the others the highest id SQLite ever handed out (sqlite_sequence keeps
    those of deleted rows too)."""
    handed_out = dict(src.execute("SELECT name, seq FROM sqlite_sequence").fetchall()) \
        if "sqlite_sequence" in _sqlite_tables(src) else {}
    for table in TABLES:
        if table.identity is None:
            continue
        highest = await conn.fetchval(f"SELECT max({table.identity}) FROM {table.name}")
        last = max(int(highest or 0), int(handed_out.get(table.name, 0)))
        if last > 0:
            await conn.execute("SELECT setval(pg_get_serial_sequence($1, $2), $3)",
                               table.name, table.identity, last)


async def _queue_counts_equal(src: sqlite3.Connection, conn: Conn) -> bool:
    sqlite_counts = {(u, s): n for u, s, n in src.execute(
        "SELECT upstream, status, count(*) FROM requests GROUP BY 1, 2")}
    pg_counts = {(r[0], r[1]): r[2] for r in await conn.fetch(
        "SELECT upstream, status, sum(n) FROM request_counts GROUP BY 1, 2 "
        "HAVING sum(n) <> 0")}
    return sqlite_counts == pg_counts


async def copy_store(src: sqlite3.Connection, conn: Conn,
                     progress: Progress | None = None) -> Report:
    """Copy the SQLite store ``src`` (from ``open_source``) into the database of ``conn``,
    migrated to this Tenang's schema first. Commits only if every count matches; raises
    TargetNotEmpty, SchemaMismatch, or a StoreError the driver's error maps to."""
    started = time.monotonic()
    with translated():
        await migrate(conn)
        # A million rows take longer than a pooled statement may.
        await conn.execute("SET statement_timeout = 0")
        columns = await _check_schemas(src, conn)
        tx = conn.transaction()
        await tx.start()
        try:
            counts, queue_equal = await _copy_all(src, conn, columns, progress)
        except BaseException:
            with contextlib.suppress(*DRIVER_ERRORS):
                await tx.rollback()
            raise
        report = Report(counts, queue_equal, 0.0)
        if report.ok:
            await _analyze(conn)
            await tx.commit()
        else:  # leave the target as it was: empty, ready for another run
            await tx.rollback()
    return dataclasses.replace(report, seconds=time.monotonic() - started)


async def _analyze(conn: Conn) -> None:
    """Statistics for the planner on every table filled, committed with the rows. A table
    filled by COPY has none until it is analyzed, and autovacuum may be off or a minute
    away: without them each claim on a copied 1,000,000-row queue sorted the whole
    backlog (6 s a claim, 6 deliveries/s; 7 ms a claim after ANALYZE, bench/scale_bench.py
    --store). About 1 s per million requests."""
    for table in (*(t.name for t in TABLES), "request_counts"):
        await conn.execute(f"ANALYZE {table}")


async def _copy_all(src: sqlite3.Connection, conn: Conn, columns: dict[str, list[str]],
                    progress: Progress | None) -> tuple[tuple[Count, ...], bool]:
    await _require_empty(conn)
    for table in TABLES:
        began = time.monotonic()
        names = columns[table.name] + (["seq"] if table.name == "requests" else [])
        await conn.copy_records_to_table(
            table.name, records=_rows(src, table, columns[table.name]), columns=names)
        if progress is not None:
            progress(table.name, _sqlite_count(src, table.name), time.monotonic() - began)
    await _continue_identities(src, conn)
    # Appends continue after the copied chain's last entry.
    await conn.execute("UPDATE chain_head SET seq = c.seq, head = c.head FROM ("
                       "SELECT seq, head FROM chain ORDER BY seq DESC LIMIT 1) c WHERE id = 1")
    counts = tuple([Count(t.name, _sqlite_count(src, t.name),
                          int(await conn.fetchval(f"SELECT count(*) FROM {t.name}")))
                    for t in TABLES])
    return counts, await _queue_counts_equal(src, conn)
