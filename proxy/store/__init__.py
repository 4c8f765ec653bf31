"""Durable storage of accepted requests behind one Store protocol."""

from __future__ import annotations

from proxy.config import ConfigError, StoreConfig
from proxy.store import postgres
from proxy.store.base import Store
from proxy.store.sqlite.store import SqliteStore


def open_store(config: StoreConfig) -> Store:
    """The backend named by ``config.url`` (not yet opened)."""
    if config.is_postgres and postgres.INCOMPLETE is not None:
        raise ConfigError(f"store.url: {postgres.INCOMPLETE}")
    return SqliteStore(config.sqlite_path, config.busy_timeout_ms)
