"""SQLite implementation of the admin store verbs (``AdminStore``), mixed into SqliteStore.

Reads go through the store's reader connection, writes through its group-commit writer.
Request-log queries are keyset-paginated on indexes that exist since schema v1:
``requests_status (status, id)`` when a status is given, the primary key otherwise. A
receive-time range becomes an id range (ids are minted from the receive time), so it is
served by the same index; everything else is checked row by row inside a bounded window.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from proxy.lifecycle import OPEN, Verdict, sql_in
from proxy.store.admin_base import (
    SCAN_WINDOW,
    AttemptBucket,
    AuditEntry,
    RequestFilter,
    RequestPage,
    Session,
    User,
    after_login_failure,
)
from proxy.store.admin_filter import id_ceiling, id_floor, like_escape
from proxy.store.base import Conflict

T = TypeVar("T")

_USER = "SELECT name, password_hash, role, created_at, failed_logins, locked_until FROM users"
# Counted by the triggers of schema v8 (request_counts.sep is the SEP test).
_SEP_OPEN = (
    f"SELECT upstream, SUM(n) FROM request_counts WHERE sep=1 AND status IN {sql_in(OPEN)} "
    "GROUP BY upstream HAVING SUM(n) > 0"
)


# The dashboard's chart: the recent range of attempts_upstream_time only.
_ATTEMPT_BUCKETS = (
    "SELECT CAST((started_at - ?) / ? AS INTEGER) AS b, verdict, COUNT(*) "
    "FROM attempts WHERE upstream=? AND started_at>=? GROUP BY b, verdict ORDER BY b")


def _user(r: sqlite3.Row | tuple[Any, ...]) -> User:
    return User(name=r[0], password_hash=r[1], role=r[2], created_at=r[3],
                failed_logins=r[4], locked_until=r[5])


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
        where.append("(path LIKE ? ESCAPE '\\' OR query LIKE ? ESCAPE '\\' "
                     "OR CAST(body AS TEXT) LIKE ? ESCAPE '\\')")
        params.extend(["%" + like_escape(f.text) + "%"] * 3)
    return where, params


def _sql_where(clauses: list[str]) -> str:
    return " AND ".join(clauses) if clauses else "1=1"


AUDIT = "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?,?,?,?,?)"


class SqliteAdminMixin:
    if TYPE_CHECKING:  # provided by SqliteStore
        async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

        async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T: ...

    # --- users ---------------------------------------------------------------------------

    async def add_user(self, name: str, password_hash: str, role: str, now: float, *,
                       replace: bool = False) -> None:
        def op(c: sqlite3.Connection) -> bool:
            old = c.execute("SELECT password_hash FROM users WHERE name=?", (name,)).fetchone()
            if old:
                if not replace:
                    return False
                if old[0] != password_hash:  # a new password ends the old one's sessions
                    c.execute("DELETE FROM sessions WHERE user_name=?", (name,))
                c.execute("UPDATE users SET password_hash=?, role=? WHERE name=?",
                          (password_hash, role, name))
                return True
            c.execute("INSERT INTO users (name, password_hash, role, created_at) "
                      "VALUES (?,?,?,?)", (name, password_hash, role, now))
            return True

        if not await self._write(op):
            raise Conflict(f"user {name!r} already exists")

    async def get_user(self, name: str) -> User | None:
        rows = await self._read(f"{_USER} WHERE name=?", (name,))
        return _user(rows[0]) if rows else None

    async def count_users(self) -> int:
        return int((await self._read("SELECT COUNT(*) FROM users"))[0][0])

    async def remove_user(self, name: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            c.execute("DELETE FROM sessions WHERE user_name=?", (name,))
            return bool(c.execute("DELETE FROM users WHERE name=?", (name,)).rowcount)

        return await self._write(op)

    async def record_login_failure(self, name: str, now: float, *, lock_after: int,
                                   lock_s: float) -> User | None:
        def op(c: sqlite3.Connection) -> User | None:
            row = c.execute(f"{_USER} WHERE name=?", (name,)).fetchone()
            if row is None:
                return None
            failures, locked = after_login_failure(row[4], row[5], now,
                                                   lock_after=lock_after, lock_s=lock_s)
            c.execute("UPDATE users SET failed_logins=?, locked_until=? WHERE name=?",
                      (failures, locked, name))
            return _user((*row[:4], failures, locked))

        return await self._write(op)

    async def reset_login_failures(self, name: str) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE users SET failed_logins=0, locked_until=NULL WHERE name=?", (name,)))

    # --- sessions ------------------------------------------------------------------------

    async def create_session(self, session: Session) -> None:
        s = session
        await self._write(lambda c: c.execute(
            "INSERT INTO sessions (id, user_name, csrf_token, created_at, expires_at) "
            "VALUES (?,?,?,?,?)", (s.id, s.user_name, s.csrf_token, s.created_at, s.expires_at)))

    async def get_session(self, session_id: str, now: float) -> Session | None:
        rows = await self._read(
            "SELECT id, user_name, csrf_token, created_at, expires_at FROM sessions "
            "WHERE id=? AND expires_at>?", (session_id, now))
        return Session(*rows[0]) if rows else None

    async def delete_session(self, session_id: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM sessions WHERE id=?", (session_id,)))

    async def delete_expired_sessions(self, now: float) -> int:
        return await self._write(lambda c: c.execute(
            "DELETE FROM sessions WHERE expires_at<=?", (now,)).rowcount)

    # --- audit log -----------------------------------------------------------------------

    async def audit(self, actor: str, action: str, target: str | None, detail: str | None,
                    at: float) -> None:
        await self._write(lambda c: c.execute(AUDIT, (at, actor, action, target, detail)))

    async def audit_entries(self, *, target: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[AuditEntry]:
        where: list[str] = ["1=1"]
        params: list[Any] = []
        if target is not None:
            where.append("target=?")
            params.append(target)
        if before_id is not None:
            where.append("id<?")
            params.append(before_id)
        rows = await self._read(
            "SELECT id, at, actor, action, target, detail FROM audit_log "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [AuditEntry(*r) for r in rows]

    # --- request log ---------------------------------------------------------------------

    async def find_requests(self, f: RequestFilter, *, limit: int, cursor: str | None,
                            scan_window: int = SCAN_WINDOW) -> RequestPage:
        # Imported here: proxy.store.sqlite.store imports this module to build SqliteStore.
        from proxy.store.sqlite.store import COLUMNS, row_to_request

        where, params = _indexed(f, cursor)
        boundary: str | None = None
        if f.needs_scan:
            # The lowest id of the window: an index-only walk of at most scan_window
            # entries; None when fewer candidates exist than the window holds.
            rows = await self._read(
                f"SELECT id FROM requests WHERE {_sql_where(where)} "
                "ORDER BY id DESC LIMIT 1 OFFSET ?", (*params, scan_window - 1))
            boundary = rows[0][0] if rows else None
            if boundary is not None:
                where, params = _indexed(f, cursor, boundary)
        rest, rest_params = _residual(f)
        rows = await self._read(
            f"SELECT {COLUMNS} FROM requests WHERE {_sql_where(where + rest)} "
            "ORDER BY id DESC LIMIT ?", (*params, *rest_params, limit + 1))
        items = [row_to_request(r) for r in rows[:limit]]
        if len(rows) > limit:
            return RequestPage(items, items[-1].id)
        if boundary is not None:
            return RequestPage(items, boundary, capped=True)
        return RequestPage(items, None)

    async def count_requests(self, f: RequestFilter) -> int:
        where, params = _indexed(f, None)
        rest, rest_params = _residual(f)
        rows = await self._read(
            f"SELECT COUNT(*) FROM requests WHERE {_sql_where(where + rest)}",
            (*params, *rest_params))
        return int(rows[0][0])

    async def attempt_buckets(self, upstream: str, since: float,
                              bucket_s: float) -> list[AttemptBucket]:
        rows = await self._read(_ATTEMPT_BUCKETS, (since, bucket_s, upstream, since))
        buckets: dict[int, dict[Verdict, int]] = {}
        for b, verdict, n in rows:
            buckets.setdefault(b, {})[Verdict(verdict)] = n
        return [AttemptBucket(since + b * bucket_s, counts) for b, counts in buckets.items()]

    async def sep_open_counts(self) -> dict[str, int]:
        return {upstream: n for upstream, n in await self._read(_SEP_OPEN)}
