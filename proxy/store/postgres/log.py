"""The RequestLog role on PostgreSQL: one request, its attempts, the per-upstream
summary (from the counts the triggers keep, not a count of the backlog)."""

from __future__ import annotations

from typing import Any

from proxy.lifecycle import Status, Verdict
from proxy.store.admin_filter import id_ceiling, id_floor, like_escape
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.rows import columns, row_to_attempt, row_to_request
from proxy.store.postgres.statements import Q
from proxy.store.records import (
    SCAN_WINDOW,
    AttemptBucket,
    RequestFilter,
    RequestPage,
    StoredAttempt,
    StoredRequest,
    UpstreamSummary,
)


class PostgresLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_requests(self, f: RequestFilter, *, limit: int, cursor: str | None,
                            scan_window: int = SCAN_WINDOW) -> RequestPage:
        boundary: str | None = None
        with translated():
            if f.needs_scan:
                # The lowest id of the window: at most scan_window index entries read;
                # None when fewer candidates exist than the window holds.
                indexed = _indexed(f, cursor)
                boundary = await self._db.pool.fetchval(
                    f"SELECT id FROM requests WHERE {indexed.sql()} ORDER BY id DESC "
                    f"LIMIT 1 OFFSET {int(scan_window) - 1}", *indexed.params)
            w = _filtered(f, cursor, boundary)
            rows = await self._db.pool.fetch(
                f"SELECT {columns()} FROM requests WHERE {w.sql()} ORDER BY id DESC "
                f"LIMIT {int(limit) + 1}", *w.params)
        items = [row_to_request(r, self._db.keys) for r in rows[:limit]]
        if len(rows) > limit:
            return RequestPage(items, items[-1].id)
        if boundary is not None:
            return RequestPage(items, boundary, capped=True)
        return RequestPage(items, None)

    async def count_requests(self, f: RequestFilter) -> int:
        w = _filtered(f, None)
        with translated():
            return int(await self._db.pool.fetchval(
                f"SELECT count(*) FROM requests WHERE {w.sql()}", *w.params))

    async def attempt_buckets(self, upstream: str, since: float,
                              bucket_s: float) -> list[AttemptBucket]:
        with translated():
            rows = await self._db.pool.fetch(Q["attempt_buckets"], since, bucket_s, upstream)
        buckets: dict[int, dict[Verdict, int]] = {}
        for b, verdict, n in rows:
            buckets.setdefault(int(b), {})[Verdict(verdict)] = int(n)
        return [AttemptBucket(since + b * bucket_s, counts) for b, counts in buckets.items()]

    async def sep_open_counts(self) -> dict[str, int]:
        with translated():
            return {r[0]: int(r[1]) for r in await self._db.pool.fetch(Q["sep_open_counts"])}

    async def get(self, request_id: str) -> StoredRequest | None:
        with translated():
            row = await self._db.pool.fetchrow(Q["get"], request_id)
        return None if row is None else row_to_request(row, self._db.keys)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        with translated():
            rows = await self._db.pool.fetch(Q["attempts"], request_id)
        return [row_to_attempt(r, self._db.keys) for r in rows]

    async def summary(self) -> dict[str, UpstreamSummary]:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction(
                    isolation="repeatable_read", readonly=True):
                counts = await conn.fetch(Q["counts"])
                firsts = await conn.fetch(Q["firsts"])
        by_status: dict[str, dict[Status, int]] = {}
        for upstream, status, n in counts:
            by_status.setdefault(upstream, {})[Status(status)] = int(n)
        return {
            name: UpstreamSummary(
                counts=by_status.get(name, {}), oldest_pending_at=oldest,
                last_attempt_at=last_at,
                last_verdict=None if last_verdict is None else Verdict(last_verdict))
            for name, oldest, last_at, last_verdict in firsts
        }


def _ascii_lower(text: str) -> str:
    """ASCII letters folded, nothing else (as SQLite's LIKE and the memory backend fold)."""
    return text.encode("utf-8").lower().decode("utf-8")


class _Where:
    """Conditions with numbered parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *values: Any) -> None:
        """``clause`` with ``{}`` for each value, in order."""
        numbers = []
        for value in values:
            self.params.append(value)
            numbers.append(f"${len(self.params)}")
        self.clauses.append(clause.format(*numbers))  # {} or {0}, {1}: one per value

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "true"


def _indexed(f: RequestFilter, cursor: str | None, lowest: str | None = None) -> _Where:
    """What an index walks: status and one id range (requests_status or the primary key;
    ids are minted from the receive time). ``lowest`` (a scan window's end, never below
    the time bound) replaces the lower time bound."""
    w = _Where()
    if f.status is not None:
        w.add("status = {}", f.status.value)
    uppers = [u for u in (cursor, None if f.received_to is None
                          else id_ceiling(f.received_to)) if u is not None]
    if uppers:
        w.add("id < {}", min(uppers))
    if lowest is None and f.received_from is not None:
        lowest = id_floor(f.received_from)
    if lowest is not None:
        w.add("id >= {}", lowest)
    return w


def _filtered(f: RequestFilter, cursor: str | None, lowest: str | None = None) -> _Where:
    """The whole filter: ``_indexed``, then what is checked row by row. Text is matched
    in path, query and body with ASCII-only case folding; the body's bytes are read as
    Latin-1 (every byte a character, so no body fails to decode) and the pattern's UTF-8
    bytes likewise, which makes it a byte-wise substring match. An encrypted body (key_id
    set) cannot be searched in SQL, and is not read (CASE: its bytes are no text)."""
    w = _indexed(f, cursor, lowest)
    if f.upstream is not None:
        w.add("upstream = {}", f.upstream)
    if f.endpoint:
        w.add('lower(endpoint COLLATE "C") LIKE {}', _ascii_lower(like_escape(f.endpoint)) + "%")
    # Exact receive-time bounds; the id range is only as fine as a millisecond.
    if f.received_from is not None:
        w.add("received_at >= {}", f.received_from)
    if f.received_to is not None:
        w.add("received_at < {}", f.received_to)
    if f.text:
        pattern = "%" + _ascii_lower(like_escape(f.text)) + "%"
        w.add('(lower(path COLLATE "C") LIKE {0} OR lower(query COLLATE "C") LIKE {0} '
              "OR CASE WHEN key_id IS NULL THEN lower(convert_from(body, 'LATIN1') "
              'COLLATE "C") LIKE {1} ELSE false END)',
              pattern, pattern.encode("utf-8").decode("latin-1"))
    return w
