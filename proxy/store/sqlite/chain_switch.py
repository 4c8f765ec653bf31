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


def note_chain_switch(c: ChainedConnection, on: bool, at: float) -> bool:
    """Record a switch of the chain to ``on`` if it is one; True when it was. Runs its own
    transaction on ``c`` (the connection that opened the store, before the writer)."""
    c.execute("BEGIN IMMEDIATE")
    try:
        last = c.execute(QUERIES["last_chain_switch"], (chain.SWITCH_TARGET, chain.SWITCH_ACTOR,
                                                       chain.SWITCHED_ON, chain.SWITCHED_OFF)
                         ).fetchone()
        action = chain.switch_action(None if last is None else last[0], on)
        if action is None:
            c.execute("COMMIT")
            return False
        entry = (at, chain.SWITCH_ACTOR, action, chain.SWITCH_TARGET, chain.switch_detail(on))
        audit_id = c.execute(QUERIES["insert_audit"], entry).fetchone()[0]
        # Linked whichever way it goes (add_links would drop it with the chain off).
        c.links = [chain.audit_link(AuditEntry(audit_id, *entry))]
        link_pending(c)
        c.execute("COMMIT")
        return True
    except BaseException:
        c.links.clear()
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise
