"""The database one PostgreSQL backend's role objects share: its pool (from ``[store]``),
opened with the schema migrated (or checked, with ``migrate = false``), and intake's
group insert on it."""

from __future__ import annotations

import sys
import time

import asyncpg

from proxy.config import StoreConfig
from proxy.store.errors import StoreUnavailable
from proxy.store.postgres.chain_switch import note_chain_switch
from proxy.store.postgres.errors import translated
from proxy.store.postgres.group_insert import GroupInsert
from proxy.store.postgres.migrations import Conn, migrate, require_current
from proxy.store.postgres.pool import create_pool
from proxy.store.postgres.statements import Q
from proxy.store.sealing import PLAINTEXT, KeyRecord, Keyring


async def _check_keys(conn: Conn, keys: Keyring) -> None:
    """Refuse ``keys`` unless they fit the key ids this store has sealed under
    (``Keyring.check``: SealingError), then record the current one if it is new. Each
    instance sharing the store checks its own keyring at start."""
    keys.check(KeyRecord(r[0], bytes(r[1]), r[2]) for r in await conn.fetch(Q["sealing_keys"]))
    record = keys.check_record()
    if record is not None:
        await conn.execute(Q["add_sealing_key"], record.key_id, record.check, time.time())


class Database:
    def __init__(self, config: StoreConfig, keys: Keyring = PLAINTEXT) -> None:
        self._config = config
        self.keys = keys  # every role object seals and opens bodies with these
        self._pool: asyncpg.Pool | None = None
        self._inserts: GroupInsert | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("store is closed")
        return self._pool

    @property
    def inserts(self) -> GroupInsert:
        if self._inserts is None:
            raise StoreUnavailable("store is closed")
        return self._inserts

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = await create_pool(self._config)
        try:
            with translated():
                async with pool.acquire() as conn:
                    if self._config.migrate:
                        await migrate(conn)
                    else:
                        await require_current(conn)
                    await note_chain_switch(conn, self._config.chain, time.time())
                    await _check_keys(conn, self.keys)
                    # The migration set statement_timeout and took an advisory lock, and
                    # the pool resets no session on release (pool.py): undo all of it.
                    await conn.reset()
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        # Intake may use half the pool for its batches; the relay, the admin side and
        # the callback sender keep the rest.
        self._inserts = GroupInsert(pool, parallel=self._config.pool_max // 2,
                                    chained=self._config.chain, keys=self.keys)

    async def close(self) -> None:
        pool, inserts = self._pool, self._inserts
        self._pool = self._inserts = None
        if inserts is not None:
            await inserts.close()
        if pool is not None:
            with translated():
                await pool.close()

    async def check_writable(self) -> None:
        with translated():
            await self.pool.execute(Q["check_writable"], time.time())

    def free_bytes(self) -> int:
        """The queue's disk is the database server's, out of this host's sight: there is
        no floor to keep here. A server that fills its disk answers "disk full", which
        intake answers 503 (StoreFull) like a full SQLite disk."""
        return sys.maxsize
