"""The admin side of the store: users, sessions, the audit log and request-log queries.

A second protocol beside ``Store`` so the delivery path never depends on it; every
backend implements both (``SqliteAdminMixin``, ``MemoryAdminMixin``). Like ``Store``,
these verbs persist what the callers decide (``proxy.ops.auth``, ``proxy.ops.operations``) and
raise only ``StoreError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

from proxy.lifecycle import Status, Verdict
from proxy.store.base import Store, StoredRequest

# Free-text and other filters no index serves read at most this many candidate rows per
# page (newest first), so one search costs the same at 1,000,000 rows as at 50,000; the
# page then says where to continue (see bench/RESULTS.md, "Admin request-log search").
SCAN_WINDOW = 50_000

SEP_ENDPOINT_PREFIX = "vclaim.sep"
SEP_PATH_PART = "/sep/"  # compared case-insensitively, as the gateway matches paths


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    role: str
    created_at: float
    failed_logins: int = 0
    locked_until: float | None = None


def after_login_failure(failures: int, locked_until: float | None, now: float, *,
                        lock_after: int, lock_s: float) -> tuple[int, float | None]:
    """A user's (failed_logins, locked_until) after one more failed login: a lock that
    has run out starts the count again; ``lock_after`` failures lock for ``lock_s``."""
    if locked_until is not None and locked_until <= now:
        failures, locked_until = 0, None
    failures += 1
    if failures >= lock_after:
        failures, locked_until = 0, now + lock_s
    return failures, locked_until


@dataclass(frozen=True, slots=True)
class Session:
    """A login. ``id`` is what the store keys on (the auth layer stores a digest of the
    cookie value, so a copy of the database does not hand out live sessions)."""

    id: str
    user_name: str
    csrf_token: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """What the request log asks for; ``None`` means "any"."""

    status: Status | None = None
    upstream: str | None = None
    endpoint: str | None = None  # prefix of the endpoint name, e.g. "vclaim.sep"
    received_from: float | None = None  # inclusive, epoch seconds
    received_to: float | None = None  # exclusive
    text: str | None = None  # substring of path, query or body; ASCII case-insensitive

    @property
    def needs_scan(self) -> bool:
        """True when some condition is checked row by row rather than served by an index
        (status and the receive-time range are: ids are minted from the receive time)."""
        return bool(self.upstream or self.endpoint or self.text)


@dataclass(frozen=True, slots=True)
class RequestPage:
    """Newest first. ``next_cursor`` continues below the last row; ``capped`` says the
    page is short because the scan window ended, not because nothing older matches."""

    items: Sequence[StoredRequest]
    next_cursor: str | None
    capped: bool = False


@dataclass(frozen=True, slots=True)
class AttemptBucket:
    start: float
    counts: Mapping[Verdict, int] = field(default_factory=dict)


@runtime_checkable
class AdminStore(Protocol):
    async def add_user(self, name: str, password_hash: str, role: str, now: float, *,
                       replace: bool = False) -> None:
        """Create a user. With ``replace`` an existing user gets the new hash and role
        (its lockout state is kept; a changed hash ends its sessions); without it an
        existing name raises Conflict."""

    async def get_user(self, name: str) -> User | None: ...

    async def count_users(self) -> int:
        """How many users exist (start-up tells how to create the first one)."""

    async def remove_user(self, name: str) -> bool:
        """Delete the user and end their sessions; False when there was no such user."""

    async def record_login_failure(self, name: str, now: float, *, lock_after: int,
                                   lock_s: float) -> User | None:
        """Count one failed login (an expired lock starts the count again); the
        ``lock_after``-th failure locks the user until ``now + lock_s`` and restarts
        the count. Returns the updated user, None when there is no such user."""

    async def reset_login_failures(self, name: str) -> None:
        """Clear the failure count and any lock (after a successful login)."""

    async def create_session(self, session: Session) -> None:
        """Persist a session of an existing user (StoreError otherwise)."""

    async def get_session(self, session_id: str, now: float) -> Session | None:
        """The session, or None when unknown or expired at ``now``."""

    async def delete_session(self, session_id: str) -> None:
        """Idempotent."""

    async def delete_expired_sessions(self, now: float) -> int: ...

    async def audit(self, actor: str, action: str, target: str | None, detail: str | None,
                    at: float) -> None:
        """Append one entry to the audit log (never updated or deleted)."""

    async def audit_entries(self, *, target: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[AuditEntry]:
        """Newest first; ``before_id`` pages further back."""

    async def find_requests(self, f: RequestFilter, *, limit: int, cursor: str | None,
                            scan_window: int = SCAN_WINDOW) -> RequestPage:
        """Newest first, keyset-paginated by id (below ``cursor``). When ``f.needs_scan``
        at most ``scan_window`` candidate rows are read."""

    async def count_requests(self, f: RequestFilter) -> int:
        """Exact number of matching requests (no scan window: used for dry runs)."""

    async def attempt_buckets(self, upstream: str, since: float,
                              bucket_s: float) -> list[AttemptBucket]:
        """Attempts of ``upstream`` started at or after ``since``, counted by verdict in
        buckets of ``bucket_s`` seconds; only buckets with attempts, oldest first."""

    async def sep_open_counts(self) -> dict[str, int]:
        """Per upstream: SEP requests (endpoint ``vclaim.sep*`` or a ``/SEP/`` path) in
        one of ``lifecycle.OPEN``."""


class ManagedStore(Store, AdminStore, Protocol):
    """A store with both sides, as the admin UI and API need it."""


def managed(store: Store) -> ManagedStore:
    """``store`` typed as a ManagedStore; TypeError when the backend lacks the admin verbs."""
    if not isinstance(store, AdminStore):
        raise TypeError(f"{type(store).__name__} does not implement the admin store verbs")
    return cast(ManagedStore, store)
