"""SQLite Store (WAL, synchronous=FULL): the embedded default.

Writes go through ``SqliteWriter`` (one thread, group commit); reads use a separate
aiosqlite connection, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from proxy import lifecycle
from proxy.lifecycle import HELD_BEHIND, Status, Transition, Verdict
from proxy.store.base import (
    AttemptRecord,
    Conflict,
    DuplicateKey,
    Headers,
    NewAudit,
    NewCallback,
    NewRequest,
    StoredAttempt,
    StoredRequest,
    StoreUnavailable,
    UpstreamSummary,
)
from proxy.store.sqlite.admin import AUDIT, SqliteAdminMixin
from proxy.store.sqlite.bulk import SqliteBulkMixin
from proxy.store.sqlite.callbacks import SqliteCallbacksMixin
from proxy.store.sqlite.maintenance import SqliteMaintenanceMixin
from proxy.store.sqlite.schema import migrate
from proxy.store.sqlite.writer import SqliteWriter, connect_writer, translate

T = TypeVar("T")

COLUMNS = ("id, upstream, method, path, query, headers, body, received_at, status, attempts, "
           "next_attempt_at, updated_at, reason, lease_owner, lease_expires_at, retried_at, "
           "endpoint, ordering_key, expires_at, held_by, dedup_key, coalesce_key, reconcile_reads, "
           "own_faults")
_INSERT = ("INSERT INTO requests (id, upstream, method, path, query, headers, body, received_at,"
           " status, next_attempt_at, updated_at, endpoint, ordering_key, expires_at, "
           "dedup_key, coalesce_key, lease_owner, lease_expires_at) "
           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


# New rows are counted once per group commit, one upsert per (upstream, status, endpoint,
# path) among them, in the same transaction: a trigger per row cost ~7 us of the writer's
# time per insert (bench/RESULTS.md). Status changes are counted by a trigger (schema v8).
# The SEP test is the trigger's, so both agree on every row.
_COUNT_INSERTED = (
    "INSERT INTO request_counts (upstream, status, sep, n) VALUES (?, ?, "
    "IFNULL(? LIKE 'vclaim.sep%' OR ? LIKE '%/sep/%', 0), ?) "
    "ON CONFLICT (upstream, status, sep) DO UPDATE SET n = n + excluded.n")
_UPSTREAM, _PATH, _STATUS, _ENDPOINT = 1, 3, 8, 11  # positions in an _INSERT row


def count_inserted(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Add ``rows`` (just inserted with ``_INSERT``) to request_counts. Every insert
    into ``requests`` must be followed by this, in its transaction."""
    groups = Counter((r[_UPSTREAM], r[_STATUS], r[_ENDPOINT], r[_PATH]) for r in rows)
    conn.executemany(_COUNT_INSERTED, [(*key, n) for key, n in groups.items()])


# Built once: json.dumps with non-default options constructs an encoder per call.
_HEADERS_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


# A SIMRS sends the same header set (its X-timestamp changes once a second at most) with
# thousands of requests: encoding it once per distinct set saved ~3 us per insert.
_HEADERS_SEEN: dict[Headers, str] = {}
_HEADERS_REMEMBERED = 256


def _headers_json(headers: Headers) -> str:
    text = _HEADERS_SEEN.get(headers)
    if text is None:
        if len(_HEADERS_SEEN) >= _HEADERS_REMEMBERED:
            _HEADERS_SEEN.clear()
        text = _HEADERS_SEEN[headers] = _HEADERS_ENCODER.encode(headers)
    return text


def row_to_request(r: sqlite3.Row | tuple[Any, ...]) -> StoredRequest:
    """A ``requests`` row selected as ``COLUMNS``."""
    headers = tuple((str(k), str(v)) for k, v in json.loads(r[5]))
    return StoredRequest(
        id=r[0], upstream=r[1], method=r[2], path=r[3], query=r[4], headers=headers,
        body=bytes(r[6]), received_at=r[7], status=Status(r[8]), attempts=r[9],
        next_attempt_at=r[10], updated_at=r[11], reason=r[12], lease_owner=r[13],
        lease_expires_at=r[14], retried_at=r[15], endpoint=r[16], ordering_key=r[17],
        expires_at=r[18], held_by=r[19], dedup_key=r[20], coalesce_key=r[21],
        reconcile_reads=r[22], own_faults=r[23],
    )


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
# The summary reads no request row it does not report: counts from the table the
# triggers keep (schema v8), per upstream the first waiting request by id (ids are
# minted in receive order) from the partial index requests_waiting, and the newest
# attempt from attempts_upstream_time.
_COUNTS = ("SELECT upstream, status, SUM(n) FROM request_counts GROUP BY upstream, status "
           "HAVING SUM(n) > 0")
_FIRSTS = (
    "SELECT u.upstream, (SELECT r.received_at FROM requests r WHERE r.upstream=u.upstream "
    f"  AND r.status IN {lifecycle.sql_in(lifecycle.LIVE)} ORDER BY r.id LIMIT 1), "
    " (SELECT a.started_at FROM attempts a WHERE a.upstream=u.upstream "
    "  ORDER BY a.started_at DESC LIMIT 1), "
    " (SELECT a.verdict FROM attempts a WHERE a.upstream=u.upstream "
    "  ORDER BY a.started_at DESC LIMIT 1) "
    "FROM (SELECT upstream FROM request_counts GROUP BY upstream HAVING SUM(n) > 0) u")
_QUEUED = ("SELECT IFNULL(SUM(n), 0) FROM request_counts WHERE upstream=? AND status IN "
           f"{lifecycle.sql_in(lifecycle.QUEUED)}")
_BY_DEDUP = f"SELECT {COLUMNS} FROM requests WHERE dedup_key=?"
_LIVE_COALESCED = (f"SELECT {COLUMNS} FROM requests WHERE coalesce_key=? "
                   f"AND status IN {lifecycle.sql_in(lifecycle.LIVE)} ORDER BY id")
# {} is the list of placeholders of the older requests' ids.
_SUPERSEDE = ("UPDATE requests SET status='cancelled', reason=?, updated_at=?, "
              "next_attempt_at=NULL WHERE id IN ({}) AND status='pending' RETURNING id")
_TAKE_OVER = _lease_sql("upstream=? AND status='in_flight' AND lease_expires_at<?")


def _queue_callback(c: sqlite3.Connection, request_id: str, callback: NewCallback,
                    now: float) -> None:
    c.execute(
        "INSERT INTO callbacks (request_id, upstream, url, payload, status, next_attempt_at, "
        "created_at, updated_at) SELECT id, upstream, ?, ?, 'pending', ?, ?, ? FROM requests "
        "WHERE id=?", (callback.url, callback.payload, now, now, now, request_id))


def _insert_row(r: NewRequest) -> tuple[Any, ...]:
    return (
        r.id, r.upstream, r.method, r.path, r.query, _headers_json(r.headers), r.body,
        r.received_at, lifecycle.initial_status(r.lease_owner is not None).value,
        r.received_at, r.received_at, r.endpoint, r.ordering_key, r.expires_at,
        r.dedup_key, r.coalesce_key, r.lease_owner, r.lease_expires_at,
    )


class SqliteStore(SqliteBulkMixin, SqliteMaintenanceMixin, SqliteAdminMixin,
                  SqliteCallbacksMixin):
    def __init__(self, path: Path, busy_timeout_ms: int = 5_000) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: SqliteWriter | None = None
        self._reader: aiosqlite.Connection | None = None
        self._snapshot_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_writer(self._path, self._busy_timeout_ms)
            try:
                migrate(conn)
            finally:
                conn.close()
            self._reader = await aiosqlite.connect(self._path)
            await self._reader.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {self._path}: {exc.strerror}") from exc
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        writer = SqliteWriter(lambda: connect_writer(self._path, self._busy_timeout_ms), _INSERT,
                              count_inserted)
        writer.start(asyncio.get_running_loop())
        self._writer = writer

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if writer is not None:
            await writer.stop()
        if reader is not None:
            await reader.close()

    def _w(self) -> SqliteWriter:
        if self._writer is None:
            raise StoreUnavailable("store is closed")
        return self._writer

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreUnavailable("store is closed")
        try:
            async with self._reader.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def _snapshot(self, *statements: str) -> list[list[sqlite3.Row]]:
        """Several reads that see one consistent state (one read transaction)."""
        if self._reader is None:
            raise StoreUnavailable("store is closed")
        async with self._snapshot_lock:
            reader = self._reader
            try:
                await reader.execute("BEGIN")
                try:
                    results = []
                    for sql in statements:
                        async with reader.execute(sql) as cur:
                            results.append(list(await cur.fetchall()))
                    return results
                finally:
                    await reader.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._w().submit(op)
        return result

    async def enqueue(self, request: NewRequest) -> None:
        await self._w().insert(_insert_row(request))

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        try:
            # Most calls resubmit nothing: they join the group commit's one executemany.
            await self.enqueue(request)
            return None
        except DuplicateKey:
            if request.dedup_key is None:
                raise
        row = _insert_row(request)

        # A resubmission: one writer job, the look-up, the decision and the insert in its
        # transaction, so two racing resubmissions are decided one after the other.
        def op(c: sqlite3.Connection) -> StoredRequest | None:
            found = c.execute(_BY_DEDUP, (request.dedup_key,)).fetchone()
            if found is not None:
                original = row_to_request(found)
                if lifecycle.still_matches(original, settled_window_s, now):
                    return original
                c.execute("UPDATE requests SET dedup_key=NULL WHERE id=?", (original.id,))
            c.execute(_INSERT, row)
            count_inserted(c, [row])
            return None

        return await self._write(op)

    async def live_coalesced(self, coalesce_key: str) -> list[StoredRequest]:
        return [row_to_request(r) for r in await self._read(_LIVE_COALESCED, (coalesce_key,))]

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
                    _queue_callback(c, request_id, callback, now)
            return cancelled

        return await self._write(op)

    async def count_queued(self, upstream: str) -> int:
        rows = await self._read(_QUEUED, (upstream,))
        return int(rows[0][0])

    async def claim_due(
        self, upstream: str, now: float, limit: int, owner: str, lease_until: float,
        *, probe: bool = False,
    ) -> list[StoredRequest]:
        params = (owner, lease_until, now, upstream, now, limit)

        def op(c: sqlite3.Connection) -> list[Any]:
            rows = c.execute(_CLAIM_CLEAN, params).fetchall() if probe else []
            return rows or c.execute(_CLAIM, params).fetchall()

        rows = await self._write(op)
        claimed = (row_to_request(r) for r in rows)
        return sorted(claimed, key=lambda r: (r.next_attempt_at or 0, r.id))

    async def refresh_holds(self, upstream: str, now: float) -> list[StoredRequest]:
        release = lifecycle.released(now)

        def op(c: sqlite3.Connection) -> list[Any]:
            c.execute(_RELEASE, (release.next_attempt_at, now, release.reason, upstream))
            return c.execute(_HOLD, (now, HELD_BEHIND, upstream, upstream)).fetchall()

        held = (row_to_request(r) for r in await self._write(op))
        return sorted(held, key=lambda r: r.id)

    async def take_over_expired(
        self, upstream: str, now: float, owner: str, lease_until: float
    ) -> list[StoredRequest]:
        rows = await self._write(lambda c: c.execute(
            _TAKE_OVER, (owner, lease_until, now, upstream, now)).fetchall())
        return sorted((row_to_request(r) for r in rows), key=lambda r: r.id)

    async def renew_leases(self, owner: str, request_ids: Sequence[str],
                           until: float) -> set[str]:
        ids = list(request_ids)
        if not ids:
            return set()
        sql = (f"UPDATE requests SET lease_expires_at=? WHERE id IN ({','.join('?' * len(ids))})"
               " AND status='in_flight' AND lease_owner=? RETURNING id")
        rows = await self._write(lambda c: c.execute(sql, (until, *ids, owner)).fetchall())
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
                _queue_callback(c, request_id, callback, now)
            return n

        if not await self._write(op):
            raise Conflict(f"{request_id}: lease not held by {owner}")

    async def release(self, request_id: str, owner: str, now: float) -> None:
        n = await self._write(lambda c: c.execute(
            "UPDATE requests SET status='pending', updated_at=?, lease_owner=NULL, "
            "lease_expires_at=NULL WHERE id=? AND status='in_flight' AND lease_owner=?",
            (now, request_id, owner)).rowcount)
        if not n:
            raise Conflict(f"{request_id}: lease not held by {owner}")

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float,
        callback: NewCallback | None = None, audit: NewAudit | None = None,
    ) -> None:
        t = transition
        lifecycle.ensure_allowed(expected, t.status)

        def op(c: sqlite3.Connection) -> int:
            n = c.execute(
                "UPDATE requests SET status=?, reason=?, next_attempt_at=?, updated_at=?, "
                "retried_at=COALESCE(?, retried_at), reconcile_reads=?, own_faults=? "
                "WHERE id=? AND status=?",
                (t.status.value, t.reason, t.next_attempt_at, now, t.retried_at,
                 t.reconcile_reads, t.own_faults, request_id, expected.value),
            ).rowcount
            if n and callback is not None:
                _queue_callback(c, request_id, callback, now)
            if n and audit is not None:
                c.execute(AUDIT, (now, audit.actor, audit.action, request_id, audit.detail))
            return n

        n = await self._write(op)
        if not n:
            raise Conflict(f"{request_id}: not {expected.value}")

    async def get(self, request_id: str) -> StoredRequest | None:
        rows = await self._read(f"SELECT {COLUMNS} FROM requests WHERE id=?", (request_id,))
        return row_to_request(rows[0]) if rows else None

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        rows = await self._read(
            "SELECT request_id, number, started_at, duration_s, verdict, http_status, error, "
            "response_body FROM attempts WHERE request_id=? ORDER BY number", (request_id,))
        return [
            StoredAttempt(request_id=r[0], number=r[1], started_at=r[2], duration_s=r[3],
                          verdict=Verdict(r[4]), http_status=r[5], error=r[6],
                          response_body=None if r[7] is None else bytes(r[7]))
            for r in rows
        ]

    async def summary(self) -> dict[str, UpstreamSummary]:
        counts, firsts = await self._snapshot(_COUNTS, _FIRSTS)
        out: dict[str, UpstreamSummary] = {}
        by_status: dict[str, dict[Status, int]] = {}
        for upstream, status, n in counts:
            by_status.setdefault(upstream, {})[Status(status)] = n
        for name, oldest, last_at, last_verdict in firsts:
            out[name] = UpstreamSummary(
                counts=by_status.get(name, {}), oldest_pending_at=oldest,
                last_attempt_at=last_at,
                last_verdict=None if last_verdict is None else Verdict(last_verdict))
        return out

    async def next_due_at(self, upstream: str) -> float | None:
        rows = await self._read(_NEXT_DUE, (upstream,))
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    async def check_writable(self) -> None:
        await self._write(lambda c: c.execute(
            "INSERT INTO health (id, checked_at) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET checked_at=excluded.checked_at", (time.time(),)))


