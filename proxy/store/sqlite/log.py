"""SQLite ``RequestLog``: what the admin API, the UI and the metrics read.

Reads only, on the shared reader connection. Request-log queries are keyset-paginated
on indexes that exist since schema v1: ``requests_status (status, id)`` when a status is
given, the primary key otherwise. A receive-time range becomes an id range (ids are
minted from the receive time), so it is served by the same index; everything else is
checked row by row inside a bounded window.
"""

from __future__ import annotations

from typing import Any

from proxy.lifecycle import Status, Verdict
from proxy.store.admin_filter import id_ceiling, id_floor, like_escape
from proxy.store.records import (
    SCAN_WINDOW,
    AttemptBucket,
    RequestFilter,
    RequestPage,
    StoredAttempt,
    StoredRequest,
    UpstreamSummary,
)
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES, with_where
from proxy.store.sqlite.rows import row_to_attempt, row_to_request


async def get_request(db: SqliteDb, request_id: str) -> StoredRequest | None:
    rows = await db.read(QUERIES["get_request"], (request_id,))
    return row_to_request(rows[0], db.keys) if rows else None


async def get_attempts(db: SqliteDb, request_id: str) -> list[StoredAttempt]:
    return [row_to_attempt(r, db.keys)
            for r in await db.read(QUERIES["request_attempts"], (request_id,))]


def _indexed(f: RequestFilter, cursor: str | None,
             lowest: str | None = None) -> tuple[list[str], list[Any]]:
    """Conditions the index walks: status, then one id range (cursor and time bounds).

    Each side of the range is a single bound (the tighter one): given two upper or two
    lower bounds SQLite may start or stop its index walk at the looser one. ``lowest``
    (a scan window's end, never below the time bound) replaces the lower time bound.
    """
    where: list[str] = []
    params: list[Any] = []
    if lowest is None and f.received_from is not None:
        lowest = id_floor(f.received_from)
    uppers = [u for u in (cursor, None if f.received_to is None
                          else id_ceiling(f.received_to)) if u is not None]
    for clause, value in (("status=?", f.status.value if f.status else None),
                          ("id<?", min(uppers, default=None)),
                          ("id>=?", lowest)):
        if value is not None:
            where.append(clause)
            params.append(value)
    return where, params


def _residual(f: RequestFilter) -> tuple[list[str], list[Any]]:
    """Conditions checked row by row."""
    where: list[str] = []
    params: list[Any] = []
    if f.upstream is not None:
        where.append("+upstream=?")
        params.append(f.upstream)
    if f.endpoint:
        where.append("endpoint LIKE ? ESCAPE '\\'")
        params.append(like_escape(f.endpoint) + "%")
    # Exact receive-time bounds; the id range above is only as fine as a millisecond.
    if f.received_from is not None:
        where.append("received_at>=?")
        params.append(f.received_from)
    if f.received_to is not None:
        where.append("received_at<?")
        params.append(f.received_to)
    if f.text:
        # The body is a BLOB, and LIKE never matches a BLOB: compare its bytes as text.
        # An encrypted body (key_id set) cannot be searched in SQL: only plaintext ones.
        where.append("(path LIKE ? ESCAPE '\\' OR query LIKE ? ESCAPE '\\' "
                     "OR (key_id IS NULL AND CAST(body AS TEXT) LIKE ? ESCAPE '\\'))")
        params.extend(["%" + like_escape(f.text) + "%"] * 3)
    return where, params


class SqliteLog:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def get(self, request_id: str) -> StoredRequest | None:
        return await get_request(self._db, request_id)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        return await get_attempts(self._db, request_id)

    async def summary(self) -> dict[str, UpstreamSummary]:
        counts, firsts = await self._db.snapshot(QUERIES["summary_counts"],
                                                  QUERIES["summary_firsts"])
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

    async def find_requests(self, f: RequestFilter, *, limit: int, cursor: str | None,
                            scan_window: int = SCAN_WINDOW) -> RequestPage:
        where, params = _indexed(f, cursor)
        boundary: str | None = None
        if f.needs_scan:
            # The lowest id of the window: an index-only walk of at most scan_window
            # entries; None when fewer candidates exist than the window holds.
            rows = await self._db.read(with_where(QUERIES["scan_window_end"], where),
                                       (*params, scan_window - 1))
            boundary = rows[0][0] if rows else None
            if boundary is not None:
                where, params = _indexed(f, cursor, boundary)
        rest, rest_params = _residual(f)
        rows = await self._db.read(with_where(QUERIES["find_requests"], where + rest),
                                   (*params, *rest_params, limit + 1))
        items = [row_to_request(r, self._db.keys) for r in rows[:limit]]
        if len(rows) > limit:
            return RequestPage(items, items[-1].id)
        if boundary is not None:
            return RequestPage(items, boundary, capped=True)
        return RequestPage(items, None)

    async def count_requests(self, f: RequestFilter) -> int:
        where, params = _indexed(f, None)
        rest, rest_params = _residual(f)
        rows = await self._db.read(with_where(QUERIES["count_requests"], where + rest),
                                   (*params, *rest_params))
        return int(rows[0][0])

    async def attempt_buckets(self, upstream: str, since: float,
                              bucket_s: float) -> list[AttemptBucket]:
        rows = await self._db.read(QUERIES["attempt_buckets"], (since, bucket_s, upstream, since))
        buckets: dict[int, dict[Verdict, int]] = {}
        for b, verdict, n in rows:
            buckets.setdefault(b, {})[Verdict(verdict)] = n
        return [AttemptBucket(since + b * bucket_s, counts) for b, counts in buckets.items()]

    async def sep_open_counts(self) -> dict[str, int]:
        return {upstream: n for upstream, n in await self._db.read(QUERIES["sep_open_counts"])}
