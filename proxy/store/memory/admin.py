"""In-memory implementation of the admin store verbs, mixed into MemoryStore (tests)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from proxy.lifecycle import Verdict
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
from proxy.store.admin_filter import in_id_range, is_open_sep, matches
from proxy.store.base import Conflict, StoredAttempt, StoredRequest, StoreError


@dataclass
class _AdminState:
    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)


class MemoryAdminMixin:
    if TYPE_CHECKING:  # provided by MemoryStore
        _rows: dict[str, StoredRequest]
        _attempts: dict[str, list[StoredAttempt]]

        def _live(self) -> None: ...

    def _admin(self) -> _AdminState:
        """Created on first use: MemoryStore's constructor knows nothing of the mixin."""
        self._live()
        state: _AdminState | None = self.__dict__.get("_admin_state")
        if state is None:
            state = self.__dict__["_admin_state"] = _AdminState()
        return state

    async def add_user(self, name: str, password_hash: str, role: str, now: float, *,
                       replace: bool = False) -> None:
        users = self._admin().users
        old = users.get(name)
        if old is not None and not replace:
            raise Conflict(f"user {name!r} already exists")
        if old is not None and old.password_hash != password_hash:
            self._end_sessions(name)  # a new password ends the old one's sessions
        users[name] = (dataclasses.replace(old, password_hash=password_hash, role=role)
                       if old else User(name, password_hash, role, now))

    async def get_user(self, name: str) -> User | None:
        return self._admin().users.get(name)

    async def count_users(self) -> int:
        return len(self._admin().users)

    async def remove_user(self, name: str) -> bool:
        self._end_sessions(name)
        return self._admin().users.pop(name, None) is not None

    def _end_sessions(self, name: str) -> None:
        sessions = self._admin().sessions
        for key in [k for k, s in sessions.items() if s.user_name == name]:
            del sessions[key]

    async def record_login_failure(self, name: str, now: float, *, lock_after: int,
                                   lock_s: float) -> User | None:
        users = self._admin().users
        user = users.get(name)
        if user is None:
            return None
        failures, locked = after_login_failure(user.failed_logins, user.locked_until, now,
                                               lock_after=lock_after, lock_s=lock_s)
        users[name] = dataclasses.replace(user, failed_logins=failures, locked_until=locked)
        return users[name]

    async def reset_login_failures(self, name: str) -> None:
        users = self._admin().users
        if name in users:
            users[name] = dataclasses.replace(users[name], failed_logins=0, locked_until=None)

    async def create_session(self, session: Session) -> None:
        state = self._admin()
        if session.user_name not in state.users:
            raise StoreError(f"no user {session.user_name!r}")
        if session.id in state.sessions:
            raise StoreError("session id already exists")
        state.sessions[session.id] = session

    async def get_session(self, session_id: str, now: float) -> Session | None:
        s = self._admin().sessions.get(session_id)
        return s if s is not None and s.expires_at > now else None

    async def delete_session(self, session_id: str) -> None:
        self._admin().sessions.pop(session_id, None)

    async def delete_expired_sessions(self, now: float) -> int:
        sessions = self._admin().sessions
        expired = [k for k, s in sessions.items() if s.expires_at <= now]
        for k in expired:
            del sessions[k]
        return len(expired)

    async def audit(self, actor: str, action: str, target: str | None, detail: str | None,
                    at: float) -> None:
        log = self._admin().audit
        log.append(AuditEntry(len(log) + 1, at, actor, action, target, detail))

    async def audit_entries(self, *, target: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[AuditEntry]:
        picked = [e for e in reversed(self._admin().audit)
                  if (target is None or e.target == target)
                  and (before_id is None or e.id < before_id)]
        return picked[:limit]

    def _candidates(self, f: RequestFilter, cursor: str | None) -> list[StoredRequest]:
        self._live()
        return sorted((r for r in self._rows.values() if in_id_range(f, r, cursor)),
                      key=lambda r: r.id, reverse=True)

    async def find_requests(self, f: RequestFilter, *, limit: int, cursor: str | None,
                            scan_window: int = SCAN_WINDOW) -> RequestPage:
        candidates = self._candidates(f, cursor)
        boundary = None
        if f.needs_scan and len(candidates) >= scan_window:
            candidates = candidates[:scan_window]
            boundary = candidates[-1].id
        found = [r for r in candidates if matches(f, r)]
        items = found[:limit]
        if len(found) > limit:
            return RequestPage(items, items[-1].id)
        if boundary is not None:
            return RequestPage(items, boundary, capped=True)
        return RequestPage(items, None)

    async def count_requests(self, f: RequestFilter) -> int:
        return sum(1 for r in self._candidates(f, None) if matches(f, r))

    async def attempt_buckets(self, upstream: str, since: float,
                              bucket_s: float) -> list[AttemptBucket]:
        self._live()
        buckets: dict[int, dict[Verdict, int]] = {}
        for a in self._all_attempts():
            if a.started_at >= since and self._rows[a.request_id].upstream == upstream:
                counts = buckets.setdefault(int((a.started_at - since) / bucket_s), {})
                counts[a.verdict] = counts.get(a.verdict, 0) + 1
        return [AttemptBucket(since + b * bucket_s, buckets[b]) for b in sorted(buckets)]

    def _all_attempts(self) -> Iterable[StoredAttempt]:
        return (a for attempts in self._attempts.values() for a in attempts)

    async def sep_open_counts(self) -> dict[str, int]:
        self._live()
        out: dict[str, int] = {}
        for r in self._rows.values():
            if is_open_sep(r):
                out[r.upstream] = out.get(r.upstream, 0) + 1
        return out
