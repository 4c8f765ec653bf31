"""``[audit] chain`` on a PostgreSQL store: opened with the chain switched the other way
than it was last, the store appends one audit entry saying so (``chain.SWITCHED_OFF`` or
``SWITCHED_ON``), linked either way: switching off, it is the chain's last entry before
the gap; switching on, its first after (as on SQLite: ``proxy.store.sqlite.chain_switch``).
Instances sharing the database should agree on the setting: each open that differs from
the last switch records one."""

from __future__ import annotations

from asyncpg.pool import PoolConnectionProxy

from proxy.store import chain
from proxy.store.postgres.chain_links import append
from proxy.store.postgres.statements import Q
from proxy.store.records import AuditEntry


async def note_chain_switch(conn: PoolConnectionProxy, on: bool, at: float) -> bool:
    """Record a switch of the chain to ``on`` if it is one (its own transaction); True
    when it was."""
    async with conn.transaction():
        await conn.execute(Q["lock_chain_head"])
        last = await conn.fetchval(Q["last_chain_switch"], chain.SWITCH_TARGET,
                                   chain.SWITCH_ACTOR, chain.SWITCHED_ON, chain.SWITCHED_OFF)
        action = chain.switch_action(last, on)
        if action is None:
            return False
        detail = chain.switch_detail(on)
        audit_id = await conn.fetchval(Q["audit"], at, chain.SWITCH_ACTOR, action,
                                       chain.SWITCH_TARGET, detail)
        await append(conn, [chain.audit_link(AuditEntry(
            audit_id, at, chain.SWITCH_ACTOR, action, chain.SWITCH_TARGET, detail))],
            force=True)
        return True
