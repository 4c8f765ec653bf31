"""A read-only connection to a SQLite store, of its own: for an export, a walk of the
hash chain, the preflight, which never write the file (nor create one where the config
points at nothing) and run beside a serving Tenang as well as with it stopped."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from proxy.store.errors import StoreUnavailable
from proxy.store.sqlite.writer import translate

T = TypeVar("T")


def open_read_only(path: Path, busy_timeout_ms: int = 5_000) -> sqlite3.Connection:
    """A read-only connection to an existing database file (StoreUnavailable otherwise).
    Usable from one thread at a time, not only the one that opened it (the UI reads each
    page in a worker thread)."""
    if not path.is_file():
        raise StoreUnavailable(f"no database at {path}")
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        return conn
    except sqlite3.Error as exc:
        raise translate(exc) from exc


def in_snapshot(path: Path, busy_timeout_ms: int,
                read: Callable[[sqlite3.Connection], T]) -> T:
    """``read`` on a read-only connection of its own, in one read transaction."""
    conn = open_read_only(path, busy_timeout_ms)
    try:
        conn.execute("BEGIN")
        return read(conn)
    finally:
        conn.close()
