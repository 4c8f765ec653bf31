"""A store backend as the rest of Tenang sees it: one object per role, and its lifecycle.

Backends build it from sub-objects sharing one connection or state (``proxy.store.sqlite``,
``proxy.store.memory``); the composition root (``proxy.app``) hands each consumer only the
roles it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.store.protocols import (
    Accounts,
    AuditLog,
    Chain,
    Coordination,
    Engine,
    Intake,
    Notices,
    Operator,
    Outbox,
    RequestLog,
    RequestQueue,
    Retention,
    Schedules,
    Sealing,
    SendSlots,
    Sessions,
)


@dataclass(frozen=True, slots=True)
class Backend:
    intake: Intake
    queue: RequestQueue
    log: RequestLog
    operator: Operator
    accounts: Accounts
    sessions: Sessions
    audit: AuditLog
    outbox: Outbox
    schedules: Schedules
    coordination: Coordination
    send_slots: SendSlots
    retention: Retention
    chain: Chain
    notices: Notices
    sealing: Sealing
    engine: Engine

    async def open(self) -> None:
        """Create or migrate the schema. Idempotent."""
        await self.engine.open()

    async def close(self) -> None:
        """Flush outstanding writes and release the database. Idempotent."""
        await self.engine.close()

    async def check_writable(self) -> None:
        """Raise StoreError unless a write can be committed right now."""
        await self.engine.check_writable()

    def free_bytes(self) -> int:
        """Bytes intake may still fill (see ``Engine.free_bytes``)."""
        return self.engine.free_bytes()
