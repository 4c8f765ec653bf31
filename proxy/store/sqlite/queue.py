"""SQLite ``RequestQueue``: claims under a lease, holds, supersedes and outcomes.

Every write goes through the shared writer (``SqliteDb.write``); the ordering rule's
status lists are rendered from ``proxy.lifecycle``'s sets.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from proxy import lifecycle
from proxy.lifecycle import HELD_BEHIND, Status, Transition
from proxy.store.errors import Conflict
from proxy.store.records import AttemptRecord, NewCallback, StoredRequest
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.rows import COLUMNS, queue_callback, row_to_request


def _lease_sql(where: str) -> str:
    return (f"UPDATE requests SET status='in_flight', lease_owner=?, lease_expires_at=?, "
            f"updated_at=? WHERE id IN (SELECT id FROM requests WHERE {where}) "
            f"RETURNING {COLUMNS}")


# An earlier request with the same ordering key that is not yet delivered (or has been
# given up on) keeps the later ones waiting: Antrean task ids must arrive in order.
_BLOCKING = lifecycle.sql_in(lifecycle.BLOCKS_LATER)
_STUCK = lifecycle.sql_in(lifecycle.STUCK)


def _earlier(statuses: str) -> str:
    return (f"SELECT {{cols}} FROM requests p WHERE p.ordering_key=requests.ordering_key "
            f"AND p.id<requests.id AND p.status IN {statuses}")


_DUE = ("upstream=? AND status='pending' AND next_attempt_at<=? AND (ordering_key IS NULL OR "
        f"NOT EXISTS ({_earlier(_BLOCKING).format(cols='1')})){{clean}} "
        "ORDER BY next_attempt_at, id LIMIT ?")
_CLAIM = _lease_sql(_DUE.format(clean=""))
# The half-open probe: a request refused for its own credentials last time would only
# re-open the breaker, so one with a clean record goes first (few are unclean: the walk
# along the due index stops at the first clean one).
_CLAIM_CLEAN = _lease_sql(_DUE.format(clean=" AND own_faults=0"))
# Requests waiting behind an earlier one are not due: their wake-up is its completion.
_NEXT_DUE = ("SELECT next_attempt_at FROM requests WHERE upstream=? AND status='pending' "
             f"AND (ordering_key IS NULL OR NOT EXISTS "
             f"({_earlier(_BLOCKING).format(cols='1')})) ORDER BY next_attempt_at LIMIT 1")
_FIRST_STUCK = _earlier(_STUCK).format(cols="{cols}") + " ORDER BY p.id LIMIT 1"
# lifecycle.held_behind's reason after its prefix: the stuck request's state and (id).
_STUCK_LABEL = "p.status || ' (' || p.id || ')'"
# Later requests behind one that failed, died or is held become held themselves, so
# the wait is visible and explained; once nothing before them is stuck any more (the
# parent was retried or cancelled) they return to pending.
_HOLD = (
    "UPDATE requests SET status='held', updated_at=?, "
    f"held_by=({_FIRST_STUCK.format(cols='p.id')}), "
    f"reason=? || ({_FIRST_STUCK.format(cols=_STUCK_LABEL)}) "
    # Driven from the few stuck requests (status index) through the ordering index, not
    # from the whole backlog: the unary + keeps SQLite from walking every pending row of
    # the upstream (requests_due) and testing each one's key.
    "WHERE +upstream=? AND +status='pending' AND ordering_key IN ("
    f"  SELECT s.ordering_key FROM requests s WHERE s.status IN {_STUCK} "
    "  AND s.upstream=? AND s.ordering_key IS NOT NULL) "
    f"AND EXISTS ({_earlier(_STUCK).format(cols='1')}) RETURNING {COLUMNS}")
_RELEASE = (
    "UPDATE requests SET status='pending', held_by=NULL, next_attempt_at=?, updated_at=?, "
    "reason=? WHERE upstream=? AND status='held' AND held_by IS NOT NULL "
    f"AND NOT EXISTS ({_earlier(_STUCK).format(cols='1')})")
_LIVE_COALESCED = (f"SELECT {COLUMNS} FROM requests WHERE coalesce_key=? "
                   f"AND status IN {lifecycle.sql_in(lifecycle.LIVE)} ORDER BY id")
# {} is the list of placeholders of the older requests' ids.
_SUPERSEDE = ("UPDATE requests SET status='cancelled', reason=?, updated_at=?, "
              "next_attempt_at=NULL WHERE id IN ({}) AND status='pending' RETURNING id")
_TAKE_OVER = _lease_sql("upstream=? AND status='in_flight' AND lease_expires_at<?")


class SqliteQueue:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        return [row_to_request(r) for r in await self._db.read(_LIVE_COALESCED, (coalesce_key,))]

    async def supersede(self, older: Sequence[str], newest: str, now: float,
                        callbacks: Mapping[str, NewCallback] | None = None) -> list[str]:
        ids = list(older)
        if not ids:
            return []
        transition = lifecycle.superseded_by(newest)
        sql = _SUPERSEDE.format(",".join("?" * len(ids)))
        built = callbacks or {}

        def op(c: sqlite3.Connection) -> list[str]:
            cancelled = [r[0] for r in c.execute(
                sql, (transition.reason, now, *ids)).fetchall()]
            for request_id in cancelled:
                callback = built.get(request_id)
                if callback is not None:
                    queue_callback(c, request_id, callback, now)
            return cancelled

        return await self._db.write(op)

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        params = (owner, lease_until, now, upstream, now, limit)

        def op(c: sqlite3.Connection) -> list[Any]:
            rows = c.execute(_CLAIM_CLEAN, params).fetchall() if probe else []
            return rows or c.execute(_CLAIM, params).fetchall()

        rows = await self._db.write(op)
        claimed = (row_to_request(r) for r in rows)
        return sorted(claimed, key=lambda r: (r.next_attempt_at or 0, r.id))

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        release = lifecycle.released(now)

        def op(c: sqlite3.Connection) -> list[Any]:
            c.execute(_RELEASE, (release.next_attempt_at, now, release.reason, upstream))
            return c.execute(_HOLD, (now, HELD_BEHIND, upstream, upstream)).fetchall()

        held = (row_to_request(r) for r in await self._db.write(op))
        return sorted(held, key=lambda r: r.id)

    async def take_over_expired(
        self, upstream: str, now: float, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        rows = await self._db.write(lambda c: c.execute(
            _TAKE_OVER, (owner, lease_until, now, upstream, now)).fetchall())
        return sorted((row_to_request(r) for r in rows), key=lambda r: r.id)

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        ids = list(request_ids)
        if not ids:
            return set()
        sql = (f"UPDATE requests SET lease_expires_at=? WHERE id IN ({','.join('?' * len(ids))})"
               " AND status='in_flight' AND lease_owner=? RETURNING id")
        rows = await self._db.write(lambda c: c.execute(sql, (until, *ids, owner)).fetchall())
        return {r[0] for r in rows}

    async def complete_attempt(
        self, request_id: str, owner: str, attempt: AttemptRecord | None, transition: Transition,
        now: float, callback: NewCallback | None = None,
    ) -> None:
        a, t = attempt, transition
        lifecycle.ensure_allowed(Status.IN_FLIGHT, t.status)

        def op(c: sqlite3.Connection) -> int:
            n = c.execute(
                "UPDATE requests SET status=?, reason=?, next_attempt_at=?, "
                "attempts=COALESCE(?, attempts), updated_at=?, lease_owner=NULL, "
                "lease_expires_at=NULL, reconcile_reads=?, own_faults=? "
                "WHERE id=? AND status='in_flight' AND lease_owner=?",
                (t.status.value, t.reason, t.next_attempt_at, a.number if a else None, now,
                 t.reconcile_reads, t.own_faults, request_id, owner),
            ).rowcount
            if n and a is not None:
                c.execute(
                    "INSERT INTO attempts (request_id, number, upstream, started_at, duration_s,"
                    " verdict, http_status, error, response_body) "
                    "SELECT id, ?, upstream, ?, ?, ?, ?, ?, ? FROM requests WHERE id=?",
                    (a.number, a.started_at, a.duration_s, a.verdict.value, a.http_status,
                     a.error, a.response_body, request_id),
                )
            if n and callback is not None:
                queue_callback(c, request_id, callback, now)
            return n

        if not await self._db.write(op):
            raise Conflict(f"{request_id}: lease not held by {owner}")

    async def next_due_at(self, upstream: str) -> float | None:
        rows = await self._db.read(_NEXT_DUE, (upstream,))
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None
