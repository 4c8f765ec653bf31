"""The hash chain's appends on PostgreSQL: the links a transaction adds, linked in it.

Every write that stores a request, an attempt, a state change or an audit entry calls
``append`` as the last statement of its own transaction (on intake once per group
commit: no second commit). The links' leaves are computed here, by the reference
encoding (``proxy.store.chain``); the server numbers and links them after the chain's
head (schema.sql ``tenang_chain_append``).

The chain is one sequence for every instance on the database, so appends are serialised:
each locks the one ``chain_head`` row, from its ``append`` to its COMMIT (one round trip
and the commit's WAL flush). Taking the lock last keeps that stretch short, and a
transaction holding it waits for nothing else (so none deadlocks with the row and
counter locks taken before it). The cost: chain-writing commits of several connections
and instances no longer flush together, one waits for the other's flush; a group commit
of up to ``group_insert.MAX_BATCH`` requests is one such wait, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asyncpg.pool import PoolConnectionProxy

from proxy.store import chain
from proxy.store.postgres.statements import Q


async def append(conn: PoolConnectionProxy, links: Sequence[chain.Link], *,
                 force: bool = False) -> None:
    """Link ``links``, in order, after the chain's head, in ``conn``'s transaction (which
    must be open; make this its last statement). Nothing for no links, nor with the chain
    off (``[audit] chain = false``: ``pool.ChainedConnection``) unless ``force``."""
    if not links or not (force or getattr(conn, "chain_on", True)):
        return
    await conn.execute(Q["chain_append"], [link.kind.value for link in links],
                       [link.ref for link in links], [link.leaf for link in links],
                       [link.record for link in links])


def state_links(request_ids: Iterable[str], before: str | None, after: str,
                reason: str | None, at: float) -> list[chain.Link]:
    """One state change per request (``before`` -> ``after``), in id order, as every
    backend adds them: the same moves, the same chain."""
    return [chain.state_link(rid, before, after, reason, at) for rid in sorted(request_ids)]


async def mark_purged_in(conn: PoolConnectionProxy, kind: chain.Kind, refs: Sequence[str],
                         at: float) -> int:
    """``Chain.mark_purged`` on ``conn`` (in a purge's own transaction: retention)."""
    if not refs:
        return 0
    status = await conn.execute(Q["mark_purged"], kind.value, list(refs), at)
    return int(status.split()[-1])
