"""``[audit] chain`` on a SQLite store: opened with the chain switched the other way
than it was last, the store appends one audit entry saying so (``chain.SWITCHED_OFF`` or
``SWITCHED_ON``), linked either way: switching off, it is the chain's last entry before
the gap (the chain proves when it stopped); switching on, its first after. A store that
has no such entry was on (the default since schema v11)."""

from __future__ import annotations

from proxy.store import chain
from proxy.store.records import AuditEntry
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.writer import ChainedConnection, link_pending

ACTOR, TARGET = chain.SWITCH_ACTOR, chain.SWITCH_TARGET
ON, OFF = chain.SWITCHED_ON, chain.SWITCHED_OFF


def note_chain_switch(c: ChainedConnection, on: bool, at: float) -> bool:
    """Record a switch of the chain to ``on`` if it is one; True when it was. Runs its own
    transaction on ``c`` (the connection that opened the store, before the writer)."""
    c.execute("BEGIN IMMEDIATE")
    try:
        last = c.execute(QUERIES["last_chain_switch"], (TARGET, ON, OFF)).fetchone()
        if (last is None or last[0] == ON) == on:
            c.execute("COMMIT")
            return False
        action, detail = (ON, "[audit] chain = true") if on else (OFF, "[audit] chain = false")
        audit_id = c.execute(QUERIES["insert_audit"],
                             (at, ACTOR, action, TARGET, detail)).fetchone()[0]
        c.links = [chain.audit_link(AuditEntry(audit_id, at, ACTOR, action, TARGET, detail))]
        link_pending(c)
        c.execute("COMMIT")
        return True
    except BaseException:
        c.links.clear()
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise
