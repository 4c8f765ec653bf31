"""Durable storage of accepted requests behind one Store protocol."""

from __future__ import annotations

from proxy.config import StoreConfig
from proxy.store.base import Store
from proxy.store.sqlite.store import SqliteStore


def open_store(config: StoreConfig) -> Store:
    """The backend named by ``config.url`` (not yet opened)."""
    return SqliteStore(config.sqlite_path, config.busy_timeout_ms)
