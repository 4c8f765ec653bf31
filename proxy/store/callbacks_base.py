"""Store verbs for the callback outbox: outcome notifications POSTed to the SIMRS.

Rows are created by the store itself, in the same transaction as the final transition
they report (``NewCallback`` passed to ``complete_attempt`` / ``transition``), so an
outcome is never reported without being stored, nor stored without being reported.
``proxy.delivery.callback_sender`` claims due rows under a lease, sends them and records the
result here; the retry schedule it decides is persisted as ``next_attempt_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class CallbackStatus(StrEnum):
    PENDING = "pending"  # waiting for its next_attempt_at
    SENDING = "sending"  # claimed under a lease (a crashed sender's lease expires)
    DELIVERED = "delivered"  # the receiver answered 2xx
    DEAD = "dead"  # given up on after the last allowed attempt


@dataclass(frozen=True, slots=True)
class StoredCallback:
    id: int
    request_id: str
    upstream: str
    url: str
    payload: bytes
    status: CallbackStatus
    attempts: int  # counted when claimed, so a send cut short by a crash still counts
    next_attempt_at: float
    lease_expires_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float


@runtime_checkable
class CallbackStore(Protocol):
    async def claim_callbacks(self, now: float, limit: int,
                              lease_until: float) -> list[StoredCallback]:
        """Lease up to ``limit`` callbacks to send now, oldest due first: pending ones
        whose ``next_attempt_at`` has come, and ``sending`` ones whose lease ended before
        ``now`` (their sender died). Each becomes ``sending`` until ``lease_until`` with
        its ``attempts`` counted up by one; the returned rows show that new state."""

    async def finish_callback(self, callback_id: int, delivered: bool, error: str | None,
                              next_attempt_at: float | None, now: float) -> None:
        """Record how a claimed callback's attempt ended: ``delivered``; else pending
        again at ``next_attempt_at`` with ``error``; else (None) dead with ``error``.

        Raises Conflict when the callback is not ``sending`` (unknown id, or already
        finished).
        """

    async def callbacks_for(self, request_id: str) -> list[StoredCallback]:
        """Every callback queued for ``request_id``, in the order they were queued."""

    async def next_callback_at(self) -> float | None:
        """When the earliest callback becomes claimable (a pending one's
        ``next_attempt_at`` or a sending one's lease end); None when none will."""


def finished_status(delivered: bool, next_attempt_at: float | None) -> CallbackStatus:
    """Where ``finish_callback`` moves a callback (shared by every backend)."""
    if delivered:
        return CallbackStatus.DELIVERED
    return CallbackStatus.DEAD if next_attempt_at is None else CallbackStatus.PENDING


def callback_store(store: object) -> CallbackStore:
    """``store`` as a CallbackStore; every backend mixes the verbs in."""
    if not isinstance(store, CallbackStore):
        raise TypeError(f"{type(store).__name__} lacks the callback outbox verbs")
    return store
