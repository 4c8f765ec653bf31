"""The RequestQueue role on PostgreSQL: claims, leases, holds, supersedes and the result
of each attempt, safe with several instances on one database.

Claims and take-overs lock with ``FOR UPDATE SKIP LOCKED`` (queries.sql says why no two
instances lease one request, and why ordering per key holds across them); every other
move names the state it moves from in its WHERE, so a move another instance made first
shows as Conflict, never as a second write. Each move appends its state changes (and an
attempt its record) to the hash chain in its own transaction (``chain_links``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proxy import lifecycle
from proxy.lifecycle import Status, Transition
from proxy.store import chain
from proxy.store.errors import Conflict
from proxy.store.postgres.chain_links import append
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.rows import in_due_order, row_to_request
from proxy.store.postgres.statements import Q
from proxy.store.records import AttemptRecord, NewCallback, StoredRequest
from proxy.store.sealing import payload_aad, response_aad

PENDING, IN_FLIGHT, HELD = Status.PENDING.value, Status.IN_FLIGHT.value, Status.HELD.value


class PostgresQueue:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                rows = []
                if probe:
                    rows = await conn.fetch(Q["claim_due"], upstream, now, limit, owner,
                                            lease_until, True)
                if not rows:
                    rows = await conn.fetch(Q["claim_due"], upstream, now, limit, owner,
                                            lease_until, False)
                await append(conn, chain.state_links((r["id"] for r in rows), PENDING,
                                                     IN_FLIGHT, None, now))
        return in_due_order(rows, self._db.keys)

    async def take_over_expired(self, upstream: str, now: float, owner: str,
                                lease_until: float) -> list[StoredRequest]:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(Q["take_over_expired"], upstream, now, owner,
                                        lease_until)
                await append(conn, chain.state_links((r["id"] for r in rows), IN_FLIGHT,
                                                     IN_FLIGHT, chain.TAKEN_OVER, now))
        return sorted((row_to_request(r, self._db.keys) for r in rows), key=lambda r: r.id)

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        if not request_ids:
            return set()
        with translated():
            rows = await self._db.pool.fetch(Q["renew_leases"], owner, list(request_ids), until)
        return {r["id"] for r in rows}

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        release = lifecycle.released(now)
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                await conn.execute(Q["lock_holds"], upstream)
                released = await conn.fetch(Q["release_holds"], upstream,
                                            release.next_attempt_at, now, release.reason)
                links = chain.state_links((r["id"] for r in released), HELD,
                                          release.status.value, release.reason, now)
                behind = await conn.fetch(Q["behind_stuck"], upstream)
                rows = []
                if behind:
                    reasons = [lifecycle.held_behind(Status(b["stuck_status"]), b["stuck_id"])
                               for b in behind]
                    rows = await conn.fetch(Q["hold"], now, [b["id"] for b in behind],
                                            [b["stuck_id"] for b in behind],
                                            [t.reason for t in reasons])
                    # Each held request has its own reason (the request it waits behind).
                    links += [chain.state_link(r["id"], PENDING, HELD, r["reason"], now)
                              for r in sorted(rows, key=lambda r: r["id"])]
                await append(conn, links)
        return sorted((row_to_request(r, self._db.keys) for r in rows), key=lambda r: r.id)

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        with translated():
            return [row_to_request(r, self._db.keys)
                    for r in await self._db.pool.fetch(Q["live_coalesced"], coalesce_key)]

    async def supersede(self, older: Sequence[str], newest: str, now: float,
                        callbacks: Mapping[str, NewCallback] | None = None) -> list[str]:
        if not older:
            return []
        transition = lifecycle.superseded_by(newest)
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(Q["supersede"], list(older), transition.reason, now)
                cancelled = [r["id"] for r in rows]
                links = chain.state_links(cancelled, PENDING, transition.status.value,
                                          transition.reason, now)
                queued = [(i, (callbacks or {})[i]) for i in cancelled if i in (callbacks or {})]
                if queued:
                    keys = self._db.keys
                    await conn.execute(Q["queue_callbacks"], [i for i, _ in queued],
                                       [c.url for _, c in queued],
                                       [keys.seal(c.payload, payload_aad(i))
                                        for i, c in queued], now, keys.current)
                await append(conn, links)
        order = {request_id: n for n, request_id in enumerate(older)}
        return sorted(cancelled, key=order.__getitem__)

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None,
        transition: Transition, now: float, callback: NewCallback | None = None,
    ) -> None:
        a, t, keys = attempt, transition, self._db.keys
        lifecycle.ensure_allowed(Status.IN_FLIGHT, t.status)
        body = None if a is None or a.response_body is None else keys.seal(
            a.response_body, response_aad(request_id, a.number))
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                moved = await conn.fetchval(
                    Q["complete_attempt"], t.status.value, t.reason, t.next_attempt_at, now,
                    t.reconcile_reads, t.own_faults, request_id, owner,
                    a.number if a else None, a.started_at if a else None,
                    a.duration_s if a else None, a.verdict.value if a else None,
                    a.http_status if a else None, a.error if a else None,
                    body, callback.url if callback else None,
                    None if callback is None else keys.seal(callback.payload,
                                                            payload_aad(request_id)),
                    None if body is None else keys.current,
                    keys.current if callback else None)
                if moved:
                    links = [] if a is None else [chain.attempt_link(request_id, a)]
                    await append(conn, links + chain.state_links(
                        [request_id], IN_FLIGHT, t.status.value, t.reason, now))
        if not moved:
            raise Conflict(f"{request_id}: lease not held by {owner}")

    async def next_due_at(self, upstream: str) -> float | None:
        with translated():
            value = await self._db.pool.fetchval(Q["next_due_at"], upstream)
        return None if value is None else float(value)

