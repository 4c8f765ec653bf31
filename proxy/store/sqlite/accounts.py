"""SQLite ``Accounts`` (admin users and their lockout) and ``Sessions`` (their logins)."""

from __future__ import annotations

import sqlite3
from typing import Any

from proxy.store.errors import Conflict
from proxy.store.records import Session, User
from proxy.store.rules import after_login_failure
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES


def _user(r: sqlite3.Row | tuple[Any, ...]) -> User:
    return User(name=r[0], password_hash=r[1], role=r[2], created_at=r[3],
                failed_logins=r[4], locked_until=r[5])


class SqliteAccounts:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def add_user(self, name: str, password_hash: str, role: str, now: float, *,
                       replace: bool = False) -> None:
        def op(c: sqlite3.Connection) -> bool:
            old = c.execute(QUERIES["user_password_hash"], (name,)).fetchone()
            if old:
                if not replace:
                    return False
                if old[0] != password_hash:  # a new password ends the old one's sessions
                    c.execute(QUERIES["delete_user_sessions"], (name,))
                c.execute(QUERIES["update_user"], (password_hash, role, name))
                return True
            c.execute(QUERIES["insert_user"], (name, password_hash, role, now))
            return True

        if not await self._db.write(op):
            raise Conflict(f"user {name!r} already exists")

    async def get_user(self, name: str) -> User | None:
        rows = await self._db.read(QUERIES["get_user"], (name,))
        return _user(rows[0]) if rows else None

    async def count_users(self) -> int:
        return int((await self._db.read(QUERIES["count_users"]))[0][0])

    async def remove_user(self, name: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            c.execute(QUERIES["delete_user_sessions"], (name,))
            return bool(c.execute(QUERIES["delete_user"], (name,)).rowcount)

        return await self._db.write(op)

    async def record_login_failure(self, name: str, now: float, *, lock_after: int,
                                   lock_s: float) -> User | None:
        def op(c: sqlite3.Connection) -> User | None:
            row = c.execute(QUERIES["get_user"], (name,)).fetchone()
            if row is None:
                return None
            failures, locked = after_login_failure(row[4], row[5], now,
                                                   lock_after=lock_after, lock_s=lock_s)
            c.execute(QUERIES["set_login_failures"], (failures, locked, name))
            return _user((*row[:4], failures, locked))

        return await self._db.write(op)

    async def reset_login_failures(self, name: str) -> None:
        await self._db.write(lambda c: c.execute(QUERIES["reset_login_failures"], (name,)))


class SqliteSessions:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def create_session(self, session: Session) -> None:
        s = session
        await self._db.write(lambda c: c.execute(QUERIES["insert_session"], (
            s.id, s.user_name, s.csrf_token, s.created_at, s.expires_at)))

    async def get_session(self, session_id: str, now: float) -> Session | None:
        rows = await self._db.read(QUERIES["get_session"], (session_id, now))
        return Session(*rows[0]) if rows else None

    async def delete_session(self, session_id: str) -> None:
        await self._db.write(lambda c: c.execute(QUERIES["delete_session"], (session_id,)))

    async def delete_expired_sessions(self, now: float) -> int:
        return await self._db.write(lambda c: c.execute(
            QUERIES["delete_expired_sessions"], (now,)).rowcount)
