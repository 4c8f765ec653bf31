"""In-memory ``AuditLog``."""

from __future__ import annotations

from proxy.store.memory.state import MemoryState
from proxy.store.records import AuditEntry


class MemoryAudit:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def audit(self, actor: str, action: str, target: str | None, detail: str | None,
                    at: float) -> None:
        self._s.live()
        self._s.append_audit(actor, action, target, detail, at)

    async def audit_entries(self, *, target: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[AuditEntry]:
        self._s.live()
        picked = [e for e in reversed(self._s.audit)
                  if (target is None or e.target == target)
                  and (before_id is None or e.id < before_id)]
        return picked[:limit]
