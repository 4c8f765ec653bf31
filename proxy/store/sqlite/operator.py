"""SQLite ``Operator``: a person's move and its audit entry in one transaction."""

from __future__ import annotations

from proxy import lifecycle
from proxy.lifecycle import Status, Transition
from proxy.store.errors import Conflict
from proxy.store.records import NewAudit, NewCallback
from proxy.store.sqlite.chain import chained_audit, chained_states
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.rows import queue_callback
from proxy.store.sqlite.writer import ChainedConnection


class SqliteOperator:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float,
        callback: NewCallback | None = None, audit: NewAudit | None = None,
    ) -> None:
        t = transition
        lifecycle.ensure_allowed(expected, t.status)

        def op(c: ChainedConnection) -> int:
            n = c.execute(
                QUERIES["transition"],
                (t.status.value, t.reason, t.next_attempt_at, now, t.retried_at,
                 t.reconcile_reads, t.own_faults, request_id, expected.value),
            ).rowcount
            if n and callback is not None:
                queue_callback(c, request_id, callback, now, self._db.keys)
            if n:
                chained_states(c, [request_id], expected.value, t.status.value, t.reason, now)
            if n and audit is not None:
                audit_id = c.execute(QUERIES["insert_audit"], (
                    now, audit.actor, audit.action, request_id, audit.detail)).fetchone()[0]
                chained_audit(c, audit_id, now, audit.actor, audit.action, request_id,
                              audit.detail)
            return n

        n = await self._db.write(op)
        if not n:
            raise Conflict(f"{request_id}: not {expected.value}")
