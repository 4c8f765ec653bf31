"""In-memory ``Outbox`` (rows are queued by the other role objects' moves)."""

from __future__ import annotations

import dataclasses

from proxy.store.errors import Conflict
from proxy.store.memory.state import MemoryState
from proxy.store.records import CallbackStatus, StoredCallback
from proxy.store.rules import finished_status


class MemoryOutbox:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def claim_callbacks(self, now: float, limit: int,
                              lease_until: float) -> list[StoredCallback]:
        self._s.live()
        rows = self._s.callbacks
        due = sorted(
            (cb for cb in rows.values()
             if (cb.status is CallbackStatus.PENDING and cb.next_attempt_at <= now)
             or (cb.status is CallbackStatus.SENDING and cb.lease_expires_at is not None
                 and cb.lease_expires_at < now)),
            key=lambda cb: (cb.next_attempt_at, cb.id))[:limit]
        claimed = [dataclasses.replace(cb, status=CallbackStatus.SENDING,
                                       attempts=cb.attempts + 1, lease_expires_at=lease_until,
                                       updated_at=now) for cb in due]
        rows.update((cb.id, cb) for cb in claimed)
        return claimed

    async def finish_callback(self, callback_id: int, delivered: bool, error: str | None,
                              next_attempt_at: float | None, now: float) -> None:
        self._s.live()
        rows = self._s.callbacks
        cb = rows.get(callback_id)
        if cb is None or cb.status is not CallbackStatus.SENDING:
            raise Conflict(f"callback {callback_id} is not being sent")
        status = finished_status(delivered, next_attempt_at)
        rows[callback_id] = dataclasses.replace(
            cb, status=status, last_error=error, lease_expires_at=None, updated_at=now,
            next_attempt_at=next_attempt_at if status is CallbackStatus.PENDING
            and next_attempt_at is not None else cb.next_attempt_at)

    async def next_callback_at(self) -> float | None:
        self._s.live()
        times = [cb.next_attempt_at if cb.status is CallbackStatus.PENDING
                 else cb.lease_expires_at for cb in self._s.callbacks.values()
                 if cb.status in (CallbackStatus.PENDING, CallbackStatus.SENDING)]
        return min((t for t in times if t is not None), default=None)
