"""The PostgreSQL backend: one ``Database`` (the pool) shared by one object per role."""

from __future__ import annotations

from proxy.config import StoreConfig
from proxy.store.backend import Backend
from proxy.store.postgres.accounts import PostgresAccounts, PostgresAudit, PostgresSessions
from proxy.store.postgres.chain import PostgresChain
from proxy.store.postgres.coordination import PostgresCoordination
from proxy.store.postgres.database import Database
from proxy.store.postgres.intake import PostgresIntake
from proxy.store.postgres.log import PostgresLog
from proxy.store.postgres.notices import PostgresNotices
from proxy.store.postgres.operator import PostgresOperator
from proxy.store.postgres.outbox import PostgresOutbox
from proxy.store.postgres.queue import PostgresQueue
from proxy.store.postgres.retention import PostgresRetention
from proxy.store.postgres.schedules import PostgresSchedules
from proxy.store.postgres.sealing import PostgresSealing
from proxy.store.postgres.send_slots import PostgresSendSlots
from proxy.store.sealing import PLAINTEXT, Keyring


def postgres_backend(config: StoreConfig, keys: Keyring = PLAINTEXT) -> Backend:
    """The backend on ``config.url`` (not yet opened: ``open`` creates the pool and
    migrates, or checks, the schema), sealing bodies with ``keys``."""
    db = Database(config, keys)
    return Backend(
        intake=PostgresIntake(db), queue=PostgresQueue(db), log=PostgresLog(db),
        operator=PostgresOperator(db), accounts=PostgresAccounts(db),
        sessions=PostgresSessions(db), audit=PostgresAudit(db), outbox=PostgresOutbox(db),
        schedules=PostgresSchedules(db), coordination=PostgresCoordination(db),
        send_slots=PostgresSendSlots(db), retention=PostgresRetention(db),
        chain=PostgresChain(db), notices=PostgresNotices(db), sealing=PostgresSealing(db),
        engine=db)
