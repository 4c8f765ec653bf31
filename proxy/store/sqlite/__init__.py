"""The SQLite backend (WAL, synchronous=FULL): the embedded default."""

from proxy.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
