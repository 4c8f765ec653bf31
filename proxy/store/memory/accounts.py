"""In-memory ``Accounts`` and ``Sessions``."""

from __future__ import annotations

import dataclasses

from proxy.store.errors import Conflict, StoreError
from proxy.store.memory.state import MemoryState
from proxy.store.records import Session, User
from proxy.store.rules import after_login_failure


class MemoryAccounts:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def add_user(self, name: str, password_hash: str, role: str, now: float, *,
                       replace: bool = False) -> None:
        self._s.live()
        users = self._s.users
        old = users.get(name)
        if old is not None and not replace:
            raise Conflict(f"user {name!r} already exists")
        if old is not None and old.password_hash != password_hash:
            self._s.end_sessions(name)  # a new password ends the old one's sessions
        users[name] = (dataclasses.replace(old, password_hash=password_hash, role=role)
                       if old else User(name, password_hash, role, now))

    async def get_user(self, name: str) -> User | None:
        self._s.live()
        return self._s.users.get(name)

    async def count_users(self) -> int:
        self._s.live()
        return len(self._s.users)

    async def remove_user(self, name: str) -> bool:
        self._s.live()
        self._s.end_sessions(name)
        return self._s.users.pop(name, None) is not None

    async def record_login_failure(self, name: str, now: float, *, lock_after: int,
                                   lock_s: float) -> User | None:
        self._s.live()
        users = self._s.users
        user = users.get(name)
        if user is None:
            return None
        failures, locked = after_login_failure(user.failed_logins, user.locked_until, now,
                                               lock_after=lock_after, lock_s=lock_s)
        users[name] = dataclasses.replace(user, failed_logins=failures, locked_until=locked)
        return users[name]

    async def reset_login_failures(self, name: str) -> None:
        self._s.live()
        users = self._s.users
        if name in users:
            users[name] = dataclasses.replace(users[name], failed_logins=0, locked_until=None)


class MemorySessions:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def create_session(self, session: Session) -> None:
        s = self._s
        s.live()
        if session.user_name not in s.users:
            raise StoreError(f"no user {session.user_name!r}")
        if session.id in s.sessions:
            raise StoreError("session id already exists")
        s.sessions[session.id] = session

    async def get_session(self, session_id: str, now: float) -> Session | None:
        self._s.live()
        found = self._s.sessions.get(session_id)
        return found if found is not None and found.expires_at > now else None

    async def delete_session(self, session_id: str) -> None:
        self._s.live()
        self._s.sessions.pop(session_id, None)

    async def delete_expired_sessions(self, now: float) -> int:
        self._s.live()
        sessions = self._s.sessions
        expired = [k for k, s in sessions.items() if s.expires_at <= now]
        for k in expired:
            del sessions[k]
        return len(expired)
