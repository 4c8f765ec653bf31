"""Durable storage of accepted requests, behind role protocols (``proxy.store.protocols``).

``open_store`` picks the backend by the URL's scheme and imports only that one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from proxy.config import ConfigError, StoreConfig
from proxy.store.backend import Backend
from proxy.store.chain import ChainHead
from proxy.store.errors import StoreUnavailable
from proxy.store.records import RequestFilter, StoredAttempt, StoredRequest
from proxy.store.sealing import Keyring, KeyringError

# An export's rows: pages of requests with their attempts, oldest first (proxy.ops.export).
ExportPages = Callable[[RequestFilter], Iterator[list[tuple[StoredRequest, list[StoredAttempt]]]]]


class UnknownStoreScheme(ValueError):
    """``store.url`` names a backend this build has none for."""


def keyring(config: StoreConfig) -> Keyring:
    """The keys bodies are sealed with (``proxy.store.sealing``): from the environment
    variable ``encryption_key_env`` names; none when it is unset (encryption off).
    ConfigError naming the variable when its value is malformed."""
    if not config.encryption_key_env:
        return Keyring.from_text(None, "this Tenang's config (no store.encryption_key_env)")
    source = f"store.encryption_key_env ({config.encryption_key_env})"
    if not config.encryption_keys:
        raise ConfigError(f"{source}: the environment variable is not set")
    try:
        return Keyring.from_text(config.encryption_keys, source)
    except KeyringError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def open_store(config: StoreConfig) -> Backend:
    """The backend named by ``config.url`` (not yet opened): ``sqlite:///PATH``,
    ``postgresql://USER@HOST:PORT/DB`` (several instances on one database), or
    ``memory://`` (nothing durable: tests and demos only)."""
    scheme = config.url.partition("://")[0]
    if scheme == "sqlite":
        from proxy.store.sqlite import sqlite_backend

        return sqlite_backend(config.sqlite_path, config.busy_timeout_ms, config.chain,
                              keyring(config))
    if scheme == "memory":
        from proxy.store.memory import memory_backend

        return memory_backend(chain=config.chain)
    if config.is_postgres:
        from proxy.store.postgres.backend import postgres_backend

        return postgres_backend(config, keyring(config))
    raise UnknownStoreScheme(f"store.url: no backend for {scheme!r} URLs "
                             '(supported: "sqlite:///PATH", "postgresql://...")')


def export_reader(config: StoreConfig) -> ExportPages:
    """What an export (``tenang export``, the UI's export page) reads through: a
    read-only connection of its own, beside a serving Tenang or without one (SQLite or
    PostgreSQL; for another backend reading raises StoreUnavailable saying so)."""
    if config.url.partition("://")[0] == "sqlite":
        from proxy.store.sqlite.export_reader import histories

        return functools.partial(histories, config.sqlite_path,
                                 busy_timeout_ms=config.busy_timeout_ms, keys=keyring(config))
    if config.is_postgres:
        from proxy.store.postgres import export_reader as pg_export

        return functools.partial(pg_export.histories, config, keys=keyring(config))
    scheme = config.url.partition("://")[0]

    def unsupported(f: RequestFilter) -> Iterator[list[tuple[StoredRequest, list[StoredAttempt]]]]:
        raise StoreUnavailable(f"exports read SQLite and PostgreSQL stores, not {scheme}://")

    return unsupported


@dataclass(frozen=True, slots=True)
class ExportChain:
    """The hash chain as an export's manifest needs it, read without opening the store:
    its head once the last row is written (``head``), and the head at a seq
    (``head_at``, None: no such entry) for `tenang audit verify --export`."""

    head: Callable[[], ChainHead]
    head_at: Callable[[int], bytes | None]


def export_chain(config: StoreConfig) -> ExportChain:
    """``ExportChain`` of the store at ``config.url`` (SQLite or PostgreSQL)."""
    if config.is_postgres:
        from proxy.store.postgres import export_reader as pg_export

        return ExportChain(functools.partial(pg_export.chain_head_of, config),
                           pg_export.chain_head_at(config))
    from proxy.store.sqlite import export_reader as sqlite_export

    return ExportChain(
        functools.partial(sqlite_export.chain_head_of, config.sqlite_path,
                          config.busy_timeout_ms),
        sqlite_export.chain_head_at(config.sqlite_path, config.busy_timeout_ms))
