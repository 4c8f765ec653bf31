"""In-memory ``Intake``."""

from __future__ import annotations

import dataclasses

from proxy import lifecycle
from proxy.store import chain
from proxy.store.errors import StoreError
from proxy.store.memory.state import MemoryState
from proxy.store.records import NewRequest, StoredAttempt, StoredRequest


class MemoryIntake:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        # No await: the look-up, the decision and the insert are one step of the loop.
        s = self._s
        s.live()
        original = None if request.dedup_key is None else next(
            (r for r in s.rows.values() if r.dedup_key == request.dedup_key), None)
        if original is not None:
            if lifecycle.still_matches(original, settled_window_s, now):
                return original
            s.rows[original.id] = dataclasses.replace(original, dedup_key=None)
        if request.id in s.rows:
            raise StoreError(f"request id {request.id} already exists")
        s.rows[request.id] = request.as_stored()
        s.link([chain.request_link(request)])
        return None

    async def count_queued(self, upstream: str) -> int:
        self._s.live()
        return sum(1 for r in self._s.rows.values() if r.upstream == upstream
                   and r.status in lifecycle.QUEUED)

    async def get(self, request_id: str) -> StoredRequest | None:
        self._s.live()
        return self._s.rows.get(request_id)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        self._s.live()
        return list(self._s.attempts.get(request_id, []))
