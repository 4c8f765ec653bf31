"""The asyncpg pool behind a PostgreSQL store, from ``[store]``: its URL, the password
from the environment, the pool size and the time limits."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import asyncpg

from proxy.config import StoreConfig
from proxy.store.postgres.errors import translated

# The client-side limit is a backstop for a server that stopped answering at all (a dead
# network path); statement_timeout, enforced by the server, is the limit that normally
# fires and leaves the connection usable.
_CLIENT_MARGIN_S = 5.0


def server_settings(config: StoreConfig, search_path: str | None = None) -> dict[str, str]:
    settings = {
        "application_name": "tenang",
        "statement_timeout": str(int(config.statement_timeout_s * 1000)),
    }
    if search_path is not None:
        settings["search_path"] = search_path
    return settings


if TYPE_CHECKING:
    _Connection = asyncpg.Connection[asyncpg.Record]
else:
    _Connection = asyncpg.Connection  # not subscriptable at run time


class ChainedConnection(_Connection):
    """A pool connection that knows whether the store keeps the hash chain (``[audit]
    chain``): with it off, ``chain_links.append`` drops the links."""

    chain_on: bool = True


def _chain_setting(on: bool) -> Callable[[_Connection], Coroutine[Any, Any, None]]:
    async def init(conn: _Connection) -> None:
        if isinstance(conn, ChainedConnection):
            conn.chain_on = on

    return init


async def _keep_session(conn: _Connection) -> None:
    """The pool's reset on release: none beyond asyncpg's own (it rolls back a transaction
    left open and drops listeners). Its default also sends ``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` after every use: a
    second round trip per intake batch, which the batch's 202s waited for (5 % of
    intake's time in a profile; PostgreSQL's CPU too). Nothing on the pool keeps session
    state: no SET, LISTEN, cursor or advisory lock outlives its use; the one that takes
    any (the migration at open) resets its connection itself (database.py)."""


async def create_pool(config: StoreConfig, *, search_path: str | None = None) -> asyncpg.Pool:
    """An open pool of ``pool_min``..``pool_max`` connections to ``config.url``.

    ``search_path`` puts the tables in another schema than ``public`` (the tests give
    every test a schema of its own in one database). Raises StoreUnavailable when the
    server cannot be reached or refuses the login.
    """
    with translated():
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn=config.url, password=config.password,
            min_size=config.pool_min, max_size=config.pool_max,
            timeout=config.connect_timeout_s,
            command_timeout=config.statement_timeout_s + _CLIENT_MARGIN_S,
            server_settings=server_settings(config, search_path),
            connection_class=ChainedConnection, init=_chain_setting(config.chain),
            reset=_keep_session)
    return pool


async def connect(config: StoreConfig) -> asyncpg.Connection:
    """One connection with the pool's settings (for `tenang migrate`)."""
    with translated():
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn=config.url, password=config.password, timeout=config.connect_timeout_s,
            command_timeout=config.statement_timeout_s + _CLIENT_MARGIN_S,
            server_settings=server_settings(config))
    return conn
