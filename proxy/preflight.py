"""What `serve` and `check-config` check before anything starts, and the one-line errors
a failed start ends with: an operator reads the address or the path and the cause, never
a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from proxy.config import Config, ConfigError, HostPort, StoreConfig
from proxy.loop import run
from proxy.store import keyring
from proxy.store.errors import StoreError
from proxy.store.sealing import KeyRecord, SealingError


class StartupError(Exception):
    """Tenang cannot start; the message is one line naming what and why."""


def listen_error(exc: OSError, where: HostPort, key: str) -> StartupError:
    """``exc`` from binding ``where`` (configured as ``key``), said in one line."""
    if exc.errno and exc.errno > 0:  # not the bind wrapper's long sentence
        cause = os.strerror(exc.errno).lower()
    else:  # e.g. a host name that does not resolve
        cause = (exc.strerror or str(exc)).lower()
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        hint = " (is another Tenang, or another program, using it?)"
    return StartupError(f"cannot listen on {where} ({key}): {cause}{hint}")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def data_dir_problem(db: Path) -> str | None:
    """Why the SQLite file ``db`` (with its -wal and -shm files beside it) cannot be
    written, or None. A missing directory is fine when it can be created: the store
    creates it at start, as systemd's StateDirectory or a fresh volume expect."""
    folder = db.parent
    if folder.exists() and not folder.is_dir():
        return f"data directory {folder} is not a directory"
    if not folder.exists():
        ancestor = _nearest_existing(folder)
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            return (f"data directory {folder} does not exist and cannot be created "
                    f"({ancestor} is not writable): create it, or fix the path")
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return (f"data directory {folder} is read-only for this user: Tenang writes "
                f"{db.name} and its -wal/-shm files there")
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        return f"database {db} is read-only for this user"
    return None


def check_data_dir(config: Config) -> None:
    """Raise ConfigError naming store.url and the path when a SQLite store cannot be
    written (a PostgreSQL store has no data directory here)."""
    if config.store.is_postgres:
        return
    problem = data_dir_problem(config.store.sqlite_path)
    if problem is not None:
        raise ConfigError(f"store.url: {problem}")


def check_store(config: Config) -> None:
    """What `serve` and `check-config` need of the store before anything starts: a
    writable data directory (SQLite), and a well-formed keyring when encryption at rest
    is on."""
    check_data_dir(config)
    keyring(config.store)


async def _postgres_key_records(store: StoreConfig) -> list[KeyRecord]:
    from proxy.store.postgres.pool import connect

    conn = await connect(store)
    try:
        if await conn.fetchval("SELECT to_regclass('sealing_keys')") is None:
            return []
        return [KeyRecord(r[0], bytes(r[1]), r[2]) for r in await conn.fetch(
            "SELECT key_id, check_value, retired_at FROM sealing_keys")]
    finally:
        await conn.close()


def _sqlite_key_records(store: StoreConfig) -> list[KeyRecord]:
    from proxy.store.sqlite.read_only import open_read_only

    if not store.sqlite_path.is_file():
        return []
    conn = open_read_only(store.sqlite_path, store.busy_timeout_ms)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='sealing_keys'").fetchone() \
                is None:
            return []
        return [KeyRecord(r[0], bytes(r[1]), r[2]) for r in conn.execute(
            "SELECT key_id, check_value, retired_at FROM sealing_keys")]
    finally:
        conn.close()


def check_keyring(store: StoreConfig) -> str:
    """`check-config`: the keyring (none, when encryption is off) fits the store's data,
    as the store's own check at start will find (``Keyring.check``): ConfigError naming
    store.encryption_key_env when a key is wrong or one still needed is missing.
    Returns the line `check-config` prints about it."""
    keys = keyring(store)
    try:
        records = run(_postgres_key_records(store)) if store.is_postgres else \
            _sqlite_key_records(store)
        keys.check(records)
    except SealingError as exc:
        raise ConfigError(f"store.encryption_key_env: {exc}") from None
    except StoreError as exc:
        raise ConfigError(f"store.url: cannot read {store.location}: {_one_line(exc)}") \
            from None
    if keys.current is None:
        return "encryption at rest: off (store.encryption_key_env is not set)"
    previous = sorted(keys.key_ids - {keys.current})
    return (f"encryption at rest: on, key id {keys.current}"
            + (f" (previous: {', '.join(previous)})" if previous else ""))


async def _postgres_schema(store: StoreConfig) -> int:
    from proxy.store.postgres.migrations import schema_version
    from proxy.store.postgres.pool import connect

    conn = await connect(store)
    try:
        return await schema_version(conn)
    finally:
        await conn.close()


def _one_line(exc: BaseException) -> str:
    """The driver's own words (the cause behind a StoreError), on one line."""
    cause = exc.__cause__ or exc
    return " ".join((str(cause) or type(cause).__name__).split())


def store_note(store: StoreConfig) -> str:
    """What `check-config` adds after the store's location: for a PostgreSQL store it
    connects and reads the schema version, and raises ConfigError in one line when the
    server cannot be reached or would refuse `serve` (an operator learns it before the
    deploy, not from the first start)."""
    if not store.is_postgres:
        return "" if store.sqlite_path.parent.exists() else \
            " (its directory is created at start)"
    from proxy.store.postgres.migrations import LATEST

    try:
        version = run(_postgres_schema(store))
    except StoreError as exc:
        raise ConfigError(f"store.url: cannot connect to {store.url}: {_one_line(exc)}") \
            from None
    if version > LATEST:
        raise ConfigError(f"store.url: database schema v{version} is newer than this "
                          f"Tenang (v{LATEST})")
    if version == LATEST:
        return f" (reachable, schema v{version})"
    if store.migrate:
        return f" (reachable, schema v{version}: migrated to v{LATEST} at start)"
    raise ConfigError(f"store.url: database schema v{version} is older than this Tenang "
                      f"(v{LATEST}) and store.migrate = false: run `tenang migrate "
                      "--config FILE` first")


def no_users_hint(config_path: Path) -> str:
    return ("tenang: no admin UI user exists yet (none in [[admin.users]] or the database); "
            f"create one with: tenang user add NAME --role admin --config {config_path}")
