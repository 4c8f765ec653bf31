"""Callback outbox verbs of MemoryStore (same contract as the SQLite ones)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from proxy.store.base import Conflict, NewCallback, StoredRequest
from proxy.store.callbacks_base import CallbackStatus, StoredCallback, finished_status


class MemoryCallbacksMixin:
    if TYPE_CHECKING:  # provided by MemoryStore
        _rows: dict[str, StoredRequest]

        def _live(self) -> None: ...

    def _callback_rows(self) -> dict[int, StoredCallback]:
        """Created on first use: MemoryStore's constructor knows nothing of the mixin."""
        rows: dict[int, StoredCallback] | None = self.__dict__.get("_callbacks")
        if rows is None:
            rows = self.__dict__["_callbacks"] = {}
        return rows

    def _queue_callback(self, request_id: str, callback: NewCallback, now: float) -> None:
        """Called by MemoryStore inside the transition that queues it."""
        rows = self._callback_rows()
        new_id = max(rows, default=0) + 1
        rows[new_id] = StoredCallback(
            id=new_id, request_id=request_id, upstream=self._rows[request_id].upstream,
            url=callback.url, payload=callback.payload, status=CallbackStatus.PENDING,
            attempts=0, next_attempt_at=now, lease_expires_at=None, last_error=None,
            created_at=now, updated_at=now)

    async def claim_callbacks(self, now: float, limit: int,
                              lease_until: float) -> list[StoredCallback]:
        self._live()
        rows = self._callback_rows()
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
        self._live()
        rows = self._callback_rows()
        cb = rows.get(callback_id)
        if cb is None or cb.status is not CallbackStatus.SENDING:
            raise Conflict(f"callback {callback_id} is not being sent")
        status = finished_status(delivered, next_attempt_at)
        rows[callback_id] = dataclasses.replace(
            cb, status=status, last_error=error, lease_expires_at=None, updated_at=now,
            next_attempt_at=next_attempt_at if status is CallbackStatus.PENDING
            and next_attempt_at is not None else cb.next_attempt_at)

    async def callbacks_for(self, request_id: str) -> list[StoredCallback]:
        self._live()
        return sorted((cb for cb in self._callback_rows().values()
                       if cb.request_id == request_id), key=lambda cb: cb.id)

    async def next_callback_at(self) -> float | None:
        self._live()
        times = [cb.next_attempt_at if cb.status is CallbackStatus.PENDING
                 else cb.lease_expires_at for cb in self._callback_rows().values()
                 if cb.status in (CallbackStatus.PENDING, CallbackStatus.SENDING)]
        return min((t for t in times if t is not None), default=None)
