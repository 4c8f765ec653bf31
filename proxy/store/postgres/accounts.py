"""The Accounts, Sessions and AuditLog roles on PostgreSQL: admin UI users, their
logins, and the append-only audit log (each entry in the hash chain, in its
transaction)."""

from __future__ import annotations

import asyncpg

from proxy.store import chain
from proxy.store.errors import Conflict
from proxy.store.postgres.chain_links import append
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q
from proxy.store.records import AuditEntry, Session, User
from proxy.store.rules import after_login_failure


def _user(r: asyncpg.Record) -> User:
    return User(name=r["name"], password_hash=r["password_hash"], role=r["role"],
                created_at=r["created_at"], failed_logins=r["failed_logins"],
                locked_until=r["locked_until"])


class PostgresAccounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_user(self, name: str, password_hash: str, role: str, now: float, *,
                       replace: bool = False) -> None:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                if (await conn.execute(Q["add_user"], name, password_hash, role, now)
                        ).endswith(" 1"):
                    return
                if not replace:
                    raise Conflict(f"user {name!r} already exists")
                old = await conn.fetchrow(Q["user_locked"], name)
                if old is not None and old["password_hash"] != password_hash:
                    await conn.execute(Q["end_sessions_of"], name)  # a new password
                await conn.execute(Q["replace_user"], name, password_hash, role)

    async def get_user(self, name: str) -> User | None:
        with translated():
            row = await self._db.pool.fetchrow(Q["user"], name)
        return None if row is None else _user(row)

    async def count_users(self) -> int:
        with translated():
            return int(await self._db.pool.fetchval(Q["count_users"]))

    async def remove_user(self, name: str) -> bool:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                await conn.execute(Q["end_sessions_of"], name)
                return (await conn.execute(Q["remove_user"], name)).endswith(" 1")

    async def record_login_failure(self, name: str, now: float, *, lock_after: int,
                                   lock_s: float) -> User | None:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["user_locked"], name)
                if row is None:
                    return None
                failures, locked = after_login_failure(
                    row["failed_logins"], row["locked_until"], now,
                    lock_after=lock_after, lock_s=lock_s)
                await conn.execute(Q["set_login_failures"], name, failures, locked)
        user = _user(row)
        return User(user.name, user.password_hash, user.role, user.created_at, failures,
                    locked)

    async def reset_login_failures(self, name: str) -> None:
        with translated():
            await self._db.pool.execute(Q["set_login_failures"], name, 0, None)


class PostgresSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_session(self, session: Session) -> None:
        s = session
        with translated():
            await self._db.pool.execute(Q["create_session"], s.id, s.user_name, s.csrf_token,
                                        s.created_at, s.expires_at)

    async def get_session(self, session_id: str, now: float) -> Session | None:
        with translated():
            row = await self._db.pool.fetchrow(Q["session"], session_id, now)
        return None if row is None else Session(*row)

    async def delete_session(self, session_id: str) -> None:
        with translated():
            await self._db.pool.execute(Q["delete_session"], session_id)

    async def delete_expired_sessions(self, now: float) -> int:
        with translated():
            status = await self._db.pool.execute(Q["delete_expired_sessions"], now)
        return int(status.split()[-1])


class PostgresAudit:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def audit(self, actor: str, action: str, target: str | None, detail: str | None,
                    at: float) -> None:
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                audit_id = await conn.fetchval(Q["audit"], at, actor, action, target, detail)
                await append(conn, [chain.audit_link(
                    AuditEntry(audit_id, at, actor, action, target, detail))])

    async def audit_entries(self, *, target: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[AuditEntry]:
        with translated():
            rows = await self._db.pool.fetch(Q["audit_entries"], target, before_id, limit)
        return [AuditEntry(*r) for r in rows]
