"""Durable storage of accepted requests, behind role protocols (``proxy.store.protocols``).

``open_store`` picks the backend by the URL's scheme and imports only that one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from proxy.config import ConfigError, StoreConfig
from proxy.store import postgres
from proxy.store.backend import Backend
from proxy.store.errors import StoreUnavailable
from proxy.store.records import RequestFilter, StoredAttempt, StoredRequest

# An export's rows: pages of requests with their attempts, oldest first (proxy.ops.export).
ExportPages = Callable[[RequestFilter], Iterator[list[tuple[StoredRequest, list[StoredAttempt]]]]]


class UnknownStoreScheme(ValueError):
    """``store.url`` names a backend this build has none for."""


def open_store(config: StoreConfig) -> Backend:
    """The backend named by ``config.url`` (not yet opened): ``sqlite:///PATH``, or
    ``memory://`` (nothing durable: tests and demos only). ``postgresql://`` is refused
    with ``postgres.INCOMPLETE`` until that backend fills every role."""
    scheme = config.url.partition("://")[0]
    if scheme == "sqlite":
        from proxy.store.sqlite import sqlite_backend

        return sqlite_backend(config.sqlite_path, config.busy_timeout_ms)
    if scheme == "memory":
        from proxy.store.memory import memory_backend

        return memory_backend()
    if config.is_postgres:
        if postgres.INCOMPLETE is not None:
            raise ConfigError(f"store.url: {postgres.INCOMPLETE}")
        from proxy.store.postgres.backend import postgres_backend

        return postgres_backend(config)
    raise UnknownStoreScheme(f"store.url: no backend for {scheme!r} URLs "
                             '(supported: "sqlite:///PATH")')


def export_reader(config: StoreConfig) -> ExportPages:
    """What an export (``tenang export``, the UI's export page) reads through: a
    read-only connection of its own, beside a serving Tenang or without one. SQLite only
    so far: for another backend reading raises StoreUnavailable saying so."""
    if config.url.partition("://")[0] == "sqlite":
        from proxy.store.sqlite.export_reader import histories

        return functools.partial(histories, config.sqlite_path,
                                 busy_timeout_ms=config.busy_timeout_ms)
    scheme = config.url.partition("://")[0]

    def unsupported(f: RequestFilter) -> Iterator[list[tuple[StoredRequest, list[StoredAttempt]]]]:
        raise StoreUnavailable(f"exports read SQLite stores only so far, not {scheme}://")

    return unsupported
