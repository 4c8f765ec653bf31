"""The hash chain's appends on PostgreSQL: the links a transaction adds, linked in it.

Every write that stores an attempt, a state change or an audit entry calls ``append`` as
the last statement of its own transaction. Intake appends inside its one statement
(queries.sql ``insert_requests``: once per group commit, no second statement, no second
commit). The links' leaves are computed here, by the reference encoding
(``proxy.store.chain``); the server numbers and links them after the chain's head
(schema.sql ``tenang_chain_append``).

The chain is one sequence for every instance on the database, so appends are serialised:
each locks the one ``chain_head`` row until its COMMIT. Taking the lock last keeps that
stretch short (here one round trip and the commit's WAL flush; on intake the flush
alone), and a transaction holding it waits for nothing another appender may hold (the
request and counter rows are locked before it; intake's counters are its own slots,
schema v9), so none deadlocks. The cost: chain-writing commits no longer flush
together, each waits for the one before it; a group commit of up to
``group_insert.MAX_BATCH`` requests is one such wait, whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncpg.pool import PoolConnectionProxy

from proxy.store import chain
from proxy.store.postgres.statements import Q


async def append(conn: PoolConnectionProxy, links: Sequence[chain.Link], *,
                 force: bool = False) -> None:
    """Link ``links``, in order, after the chain's head, in ``conn``'s transaction (which
    must be open; make this its last statement). Nothing for no links, nor with the chain
    off (``[audit] chain = false``: ``pool.ChainedConnection``) unless ``force``."""
    if not links or not (force or chain_on(conn)):
        return
    await conn.execute(Q["chain_append"], [link.kind.value for link in links],
                       [link.ref for link in links], [link.leaf for link in links],
                       [link.record for link in links])


def chain_on(conn: PoolConnectionProxy) -> bool:
    """Whether ``conn``'s pool keeps the chain (``[audit] chain``: ``pool.ChainedConnection``)."""
    return bool(getattr(conn, "chain_on", True))


async def mark_purged_in(conn: PoolConnectionProxy, kind: chain.Kind, refs: Sequence[str],
                         at: float) -> int:
    """``Chain.mark_purged`` on ``conn`` (in a purge's own transaction: retention)."""
    if not refs:
        return 0
    status = await conn.execute(Q["mark_purged"], kind.value, list(refs), at)
    return int(status.split()[-1])
