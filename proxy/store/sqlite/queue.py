"""SQLite ``RequestQueue``: claims under a lease, holds, supersedes and outcomes.

Every write goes through the shared writer (``SqliteDb.write``); the statements are in
``queries.sql``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proxy import lifecycle
from proxy.lifecycle import HELD_BEHIND, Status, Transition
from proxy.store import chain
from proxy.store.errors import Conflict
from proxy.store.records import AttemptRecord, NewCallback, StoredRequest
from proxy.store.sqlite.chain import chained_states
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES, with_ids
from proxy.store.sqlite.rows import attempt_row, queue_callback, row_to_request
from proxy.store.sqlite.writer import ChainedConnection

PENDING, IN_FLIGHT, HELD = Status.PENDING.value, Status.IN_FLIGHT.value, Status.HELD.value


class SqliteQueue:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        rows = await self._db.read(QUERIES["live_coalesced"], (coalesce_key,))
        return [row_to_request(r, self._db.keys) for r in rows]

    async def supersede(self, older: Sequence[str], newest: str, now: float,
                        callbacks: Mapping[str, NewCallback] | None = None) -> list[str]:
        ids = list(older)
        if not ids:
            return []
        transition = lifecycle.superseded_by(newest)
        sql = with_ids(QUERIES["supersede"], len(ids))
        built = callbacks or {}

        def op(c: ChainedConnection) -> list[str]:
            cancelled = [r[0] for r in c.execute(
                sql, (transition.reason, now, *ids)).fetchall()]
            chained_states(c, cancelled, PENDING, transition.status.value, transition.reason,
                           now)
            for request_id in cancelled:
                callback = built.get(request_id)
                if callback is not None:
                    queue_callback(c, request_id, callback, now, self._db.keys)
            return cancelled

        return await self._db.write(op)

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        params = (owner, lease_until, now, upstream, now, limit)

        def op(c: ChainedConnection) -> list[Any]:
            rows = c.execute(QUERIES["claim_due_clean"], params).fetchall() if probe else []
            rows = rows or c.execute(QUERIES["claim_due"], params).fetchall()
            chained_states(c, (r[0] for r in rows), PENDING, IN_FLIGHT, None, now)
            return rows

        rows = await self._db.write(op)
        claimed = (row_to_request(r, self._db.keys) for r in rows)
        return sorted(claimed, key=lambda r: (r.next_attempt_at or 0, r.id))

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        release = lifecycle.released(now)

        def op(c: ChainedConnection) -> list[Any]:
            released = c.execute(QUERIES["release_held"],
                                 (release.next_attempt_at, now, release.reason,
                                  upstream)).fetchall()
            chained_states(c, (r[0] for r in released), HELD, release.status.value,
                           release.reason, now)
            held = c.execute(QUERIES["hold_behind_stuck"],
                             (now, HELD_BEHIND, upstream, upstream)).fetchall()
            # Each held request has its own reason (the request it waits behind).
            c.add_links(chain.state_link(rid, PENDING, HELD, reason, now)
                        for rid, reason in sorted((r[0], r[12]) for r in held))
            return held

        held = (row_to_request(r, self._db.keys) for r in await self._db.write(op))
        return sorted(held, key=lambda r: r.id)

    async def take_over_expired(
        self, upstream: str, now: float, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        def op(c: ChainedConnection) -> list[Any]:
            rows = c.execute(QUERIES["take_over_expired"],
                             (owner, lease_until, now, upstream, now)).fetchall()
            chained_states(c, (r[0] for r in rows), IN_FLIGHT, IN_FLIGHT,
                           chain.TAKEN_OVER, now)
            return rows

        rows = await self._db.write(op)
        return sorted((row_to_request(r, self._db.keys) for r in rows), key=lambda r: r.id)

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        ids = list(request_ids)
        if not ids:
            return set()
        sql = with_ids(QUERIES["renew_leases"], len(ids))
        rows = await self._db.write(lambda c: c.execute(sql, (until, *ids, owner)).fetchall())
        return {r[0] for r in rows}

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None, transition: Transition,
        now: float, callback: NewCallback | None = None,
    ) -> None:
        a, t = attempt, transition
        lifecycle.ensure_allowed(Status.IN_FLIGHT, t.status)

        def op(c: ChainedConnection) -> int:
            n = c.execute(
                QUERIES["complete_attempt"],
                (t.status.value, t.reason, t.next_attempt_at, a.number if a else None, now,
                 t.reconcile_reads, t.own_faults, request_id, owner),
            ).rowcount
            if n and a is not None:
                c.execute(QUERIES["insert_attempt"], attempt_row(request_id, a, self._db.keys))
            if n and callback is not None:
                queue_callback(c, request_id, callback, now, self._db.keys)
            if n:
                if a is not None and c.chain_on:
                    c.add_links([chain.attempt_link(request_id, a)])
                chained_states(c, [request_id], IN_FLIGHT, t.status.value, t.reason, now)
            return n

        if not await self._db.write(op):
            raise Conflict(f"{request_id}: lease not held by {owner}")

    async def next_due_at(self, upstream: str) -> float | None:
        rows = await self._db.read(QUERIES["next_due_at"], (upstream,))
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None
