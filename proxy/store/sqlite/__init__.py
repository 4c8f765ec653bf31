"""The SQLite backend (WAL, synchronous=FULL): the embedded default.

One ``SqliteDb`` (writer thread plus reader connection) shared by one object per role.
"""

from __future__ import annotations

from pathlib import Path

from proxy.store.backend import Backend
from proxy.store.in_process import InProcessCoordination, InProcessSendSlots
from proxy.store.local_notices import LocalNotices
from proxy.store.sealing import PLAINTEXT, Keyring
from proxy.store.sqlite.accounts import SqliteAccounts, SqliteSessions
from proxy.store.sqlite.audit import SqliteAudit
from proxy.store.sqlite.chain import SqliteChain
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.intake import SqliteIntake
from proxy.store.sqlite.log import SqliteLog
from proxy.store.sqlite.operator import SqliteOperator
from proxy.store.sqlite.outbox import SqliteOutbox
from proxy.store.sqlite.queue import SqliteQueue
from proxy.store.sqlite.retention import SqliteRetention
from proxy.store.sqlite.schedules import SqliteSchedules
from proxy.store.sqlite.sealing import SqliteSealing


def sqlite_backend(path: Path, busy_timeout_ms: int = 5_000, chain: bool = True,
                   keys: Keyring = PLAINTEXT) -> Backend:
    """The backend on the database file at ``path`` (not yet opened); ``chain``: extend
    the hash chain (``[audit] chain``); bodies sealed with ``keys`` (proxy.store.sealing)."""
    return sqlite_backend_on(SqliteDb(path, busy_timeout_ms, chain, keys))


def sqlite_backend_on(db: SqliteDb) -> Backend:
    """Every role on ``db``."""
    return Backend(
        intake=SqliteIntake(db), queue=SqliteQueue(db), log=SqliteLog(db),
        operator=SqliteOperator(db), accounts=SqliteAccounts(db), sessions=SqliteSessions(db),
        audit=SqliteAudit(db), outbox=SqliteOutbox(db), schedules=SqliteSchedules(db),
        coordination=InProcessCoordination(), send_slots=InProcessSendSlots(),
        retention=SqliteRetention(db), chain=SqliteChain(db), notices=LocalNotices(),
        sealing=SqliteSealing(db), engine=db)


__all__ = ["SqliteDb", "sqlite_backend", "sqlite_backend_on"]
