"""SQLite ``AuditLog`` (append-only ``audit_log``)."""

from __future__ import annotations

from typing import Any

from proxy.store.records import AuditEntry
from proxy.store.sqlite.chain import chained_audit
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES, with_where
from proxy.store.sqlite.writer import ChainedConnection


class SqliteAudit:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def audit(self, actor: str, action: str, target: str | None, detail: str | None,
                    at: float) -> None:
        def op(c: ChainedConnection) -> None:
            audit_id = c.execute(QUERIES["insert_audit"],
                                 (at, actor, action, target, detail)).fetchone()[0]
            chained_audit(c, audit_id, at, actor, action, target, detail)

        await self._db.write(op)

    async def audit_entries(self, *, target: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[AuditEntry]:
        where: list[str] = []
        params: list[Any] = []
        if target is not None:
            where.append("target=?")
            params.append(target)
        if before_id is not None:
            where.append("id<?")
            params.append(before_id)
        rows = await self._db.read(with_where(QUERIES["audit_entries"], where),
                                   (*params, limit))
        return [AuditEntry(*r) for r in rows]
