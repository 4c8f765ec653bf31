"""Small decisions every backend makes the same way (so no backend spells them itself)."""

from __future__ import annotations

from proxy.store.records import CallbackStatus, StoredRequest

# SQLite's LIKE folds ASCII letters only; the text search does the same on every backend.
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def text_matches(r: StoredRequest, text: str) -> bool:
    """The request log's ``q``: ``text`` in ``r``'s path, query or body (ASCII
    case-insensitive), as the SQL backends' LIKE finds it (the in-memory backend's
    filter)."""
    needle = text.translate(ASCII_LOWER)
    body = r.body.decode("utf-8", "replace")
    return any(needle in part.translate(ASCII_LOWER) for part in (r.path, r.query, body))


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


def finished_status(delivered: bool, next_attempt_at: float | None) -> CallbackStatus:
    """Where ``Outbox.finish_callback`` moves a callback."""
    if delivered:
        return CallbackStatus.DELIVERED
    return CallbackStatus.DEAD if next_attempt_at is None else CallbackStatus.PENDING
