"""Admin logins: argon2 password hashes, sessions, lockout after failed logins, roles.

Used by the admin UI (login form, session cookie) and the admin JSON API (which also
accepts a logged-in session besides its bearer token). The session cookie carries a
random token; the store keeps only its SHA-256 digest, so a copy of the database holds
no usable session. Every login, failed login, lockout and logout goes to the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from proxy.config import AdminConfig, AdminUserConfig
from proxy.store.protocols import Accounts, AuditLog, Sessions
from proxy.store.records import Session
from proxy.store.rules import after_login_failure
from proxy.tokens import header_bytes

SESSION_COOKIE = "tenang_session"
MAX_NAME = 64  # longer names are cut before they reach the audit log
MAX_UNKNOWN_NAMES = 10_000  # failed-login counts kept for names that do not exist


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    OPERATE = "operate"  # retry, cancel, bulk retry
    EXPORT = "export"  # CSV export of the request log
    MAINTAIN = "maintain"  # maintenance windows
    # NIK, card and phone numbers in full (each full view audited: proxy.ops.disclosure);
    # without it they are masked wherever a stored request is shown.
    IDENTIFIERS = "identifiers"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    # "An operator can force an upstream's breaker open" (issue 5): maintenance is ops work.
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE, Permission.MAINTAIN}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.EXPORT, Permission.IDENTIFIERS}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. ``csrf_token`` is None for the bearer token (not a browser)."""

    name: str
    role: Role
    csrf_token: str | None = None
    session_id: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


_ROLES = frozenset(r.value for r in Role)

# The admin bearer token acts as an admin; the audit log names it so.
TOKEN_PRINCIPAL = Principal("api-token", Role.ADMIN)


class LoginRefused(Exception):
    """Wrong name or password (one message for both), or the user is locked."""

    def __init__(self, locked_until: float | None = None) -> None:
        super().__init__("locked" if locked_until else "wrong user name or password")
        self.locked_until = locked_until


_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash (argon2-cffi's default, RFC 9106 low-memory parameters)."""
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_dummy_hash: str | None = None


def _dummy() -> str:
    """A hash to verify against for unknown users, so the answer takes as long as for a
    real user and does not tell which names exist."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    return _dummy_hash


def digest(token: str) -> str:
    return hashlib.sha256(header_bytes(token)).hexdigest()


class _UnknownNames:
    """Failed logins for names that do not exist, counted and locked like a real user's
    (in memory, the most recent ``limit`` names), so that a lockout message does not
    tell which names exist."""

    def __init__(self, limit: int = MAX_UNKNOWN_NAMES) -> None:
        self._limit = limit
        self._seen: OrderedDict[str, tuple[int, float | None]] = OrderedDict()

    def locked_until(self, name: str) -> float | None:
        return self._seen.get(name, (0, None))[1]

    def fail(self, name: str, now: float, *, lock_after: int, lock_s: float) -> float | None:
        failures, locked = self._seen.pop(name, (0, None))
        self._seen[name] = after_login_failure(failures, locked, now, lock_after=lock_after,
                                               lock_s=lock_s)
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return self._seen[name][1]


class Auth:
    def __init__(self, accounts: Accounts, sessions: Sessions, audit: AuditLog,
                 settings: AdminConfig, clock: Callable[[], float] = time.time) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self._unknown = _UnknownNames()
        # One login at a time per name: guesses sent in parallel would otherwise all
        # pass the lockout check before the first failure is counted.
        self._name_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()

    async def sync_users(self, users: Sequence[AdminUserConfig]) -> None:
        """Write the config file's users into the store (their hash and role win over
        what the store holds; lockout state is kept). Idempotent."""
        for u in users:
            await self._accounts.add_user(u.name, u.password_hash, u.role, self._clock(),
                                       replace=True)

    async def login(self, name: str, password: str) -> tuple[str, Principal]:
        """A new session token (for the cookie) and who it belongs to; LoginRefused."""
        name = name.strip()[:MAX_NAME]
        lock = self._name_locks.get(name)
        if lock is None:
            lock = self._name_locks[name] = asyncio.Lock()
        async with lock:
            return await self._login(name, password)

    async def _login(self, name: str, password: str) -> tuple[str, Principal]:
        now = self._clock()
        user = await self._accounts.get_user(name)
        locked_until = self._unknown.locked_until(name) if user is None else user.locked_until
        if locked_until is not None and locked_until > now:
            await self._audit.audit(name, "login_refused", None, "locked", now)
            raise LoginRefused(locked_until)
        # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
        ok = await asyncio.to_thread(_verify, user.password_hash if user else _dummy(),
                                     password)
        if user is None or not ok or user.role not in _ROLES:
            await self._failed(name, now, known=user is not None)
        await self._accounts.reset_login_failures(name)
        token = secrets.token_urlsafe(32)
        session = Session(digest(token), name, secrets.token_urlsafe(32), now,
                          now + self._settings.session_ttl_s)
        await self._sessions.create_session(session)
        await self._sessions.delete_expired_sessions(now)
        await self._audit.audit(name, "login", None, None, now)
        return token, Principal(name, Role(user.role), session.csrf_token, session.id)

    async def _failed(self, name: str, now: float, *, known: bool) -> NoReturn:
        lock_after, lock_s = self._settings.lockout_after, self._settings.lockout_s
        if known:
            updated = await self._accounts.record_login_failure(
                name, now, lock_after=lock_after, lock_s=lock_s)
            locked_until = updated.locked_until if updated else None
        else:
            locked_until = self._unknown.fail(name, now, lock_after=lock_after, lock_s=lock_s)
        detail = "wrong password" if known else "unknown user"
        if locked_until:
            detail = "locked after repeated failures" if known else f"{detail}; locked after " \
                "repeated failures"
        await self._audit.audit(name, "login_failed", None, detail, now)
        raise LoginRefused(locked_until)

    async def principal(self, token: str | None) -> Principal | None:
        """Who holds this session token, or None (unknown, expired, user gone)."""
        if not token:
            return None
        session = await self._sessions.get_session(digest(token), self._clock())
        if session is None:
            return None
        user = await self._accounts.get_user(session.user_name)
        if user is None or user.role not in _ROLES:
            return None
        return Principal(user.name, Role(user.role), session.csrf_token, session.id)

    async def logout(self, who: Principal) -> None:
        """End the session. Idempotent (only the first logout is audited)."""
        now = self._clock()
        if who.session_id is not None and \
                await self._sessions.get_session(who.session_id, now) is not None:
            await self._sessions.delete_session(who.session_id)
            await self._audit.audit(who.name, "logout", None, None, now)
