"""The Operator role on PostgreSQL: a request moved from the state the caller saw, with
its callback and audit entry in the same statement (all or nothing), and both in the hash
chain in its transaction."""

from __future__ import annotations

from proxy import lifecycle
from proxy.lifecycle import Status, Transition
from proxy.store import chain
from proxy.store.errors import Conflict
from proxy.store.postgres.chain_links import append
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q
from proxy.store.records import AuditEntry, NewAudit, NewCallback
from proxy.store.sealing import payload_aad


class PostgresOperator:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float,
        callback: NewCallback | None = None, audit: NewAudit | None = None,
    ) -> None:
        t, keys = transition, self._db.keys
        lifecycle.ensure_allowed(expected, t.status)
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    Q["transition"], t.status.value, t.reason, t.next_attempt_at, now,
                    t.reconcile_reads, t.own_faults, request_id, expected.value,
                    t.retried_at, callback.url if callback else None,
                    None if callback is None else keys.seal(callback.payload,
                                                            payload_aad(request_id)),
                    audit.actor if audit else None, audit.action if audit else None,
                    audit.detail if audit else None, keys.current if callback else None)
                assert row is not None
                moved = row["moved"]
                if moved:
                    links = chain.state_links([request_id], expected.value,
                                              t.status.value, t.reason, now)
                    if audit is not None:
                        links.append(chain.audit_link(AuditEntry(
                            row["audit_id"], now, audit.actor, audit.action, request_id,
                            audit.detail)))
                    await append(conn, links)
        if not moved:
            raise Conflict(f"{request_id}: not {expected.value}")
