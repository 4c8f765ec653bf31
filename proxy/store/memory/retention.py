"""In-memory ``Retention``: the same rules as SQLite's, over the shared state."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from proxy import lifecycle
from proxy.store.admin_filter import id_ceiling
from proxy.store.chain import Kind, attempt_ref
from proxy.store.memory.state import MemoryState
from proxy.store.records import UNSENT_CALLBACKS, PurgeBatch, PurgeKind, StoredRequest


class MemoryRetention:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def _window(self, after_id: str | None, before: float, limit: int) -> list[str]:
        ceiling = id_ceiling(before)
        return sorted(i for i in self._s.rows if i > (after_id or "") and i < ceiling)[:limit]

    def _purgeable(self, kind: PurgeKind, r: StoredRequest, before: float) -> bool:
        if r.status not in lifecycle.FINAL or r.updated_at >= before:
            return False
        if any(c.request_id == r.id and c.status in UNSENT_CALLBACKS
               for c in self._s.callbacks.values()):
            return False
        if kind is PurgeKind.BODIES:
            return r.purged_at is None
        return not (r.status in lifecycle.BLOCKS_LATER and r.ordering_key is not None and any(
            later.ordering_key == r.ordering_key and later.id > r.id
            and later.status in lifecycle.BLOCKS_LATER for later in self._s.rows.values()))

    async def purge(self, kind: PurgeKind, before: float, after_id: str | None,
                    limit: int, now: float) -> PurgeBatch:
        self._s.live()
        window = self._window(after_id, before, limit)
        ids = [i for i in window if self._purgeable(kind, self._s.rows[i], before)]
        self._tombstone(ids, now)
        for i in ids:
            self._purge(kind, i, now)
        return PurgeBatch(len(ids), window[-1] if len(window) == limit else None)

    def _tombstone(self, ids: list[str], now: float) -> None:
        """The chain entries of the requests and their attempts marked purged, in the
        same move as the purge (as SQLite does in its transaction)."""
        s = self._s
        s.mark_purged(Kind.REQUEST, ids, now)
        s.mark_purged(Kind.ATTEMPT, [attempt_ref(i, a.number) for i in ids
                                     for a in s.attempts.get(i, [])], now)

    def _purge(self, kind: PurgeKind, request_id: str, now: float) -> None:
        s = self._s
        callbacks = [k for k, c in s.callbacks.items() if c.request_id == request_id]
        if kind is PurgeKind.ROWS:
            del s.rows[request_id]
            s.attempts.pop(request_id, None)
            for k in callbacks:
                del s.callbacks[k]
            return
        s.rows[request_id] = dataclasses.replace(s.rows[request_id], body=b"", purged_at=now)
        s.attempts[request_id] = [dataclasses.replace(a, response_body=None)
                                  for a in s.attempts.get(request_id, [])]
        for k in callbacks:
            s.callbacks[k] = dataclasses.replace(s.callbacks[k], payload=b"")

    async def purged(self, request_ids: Sequence[str]) -> dict[str, float]:
        self._s.live()
        wanted = set(request_ids)
        return {e.ref: e.purged_at for e in self._s.hash_chain
                if e.kind is Kind.REQUEST and e.ref in wanted and e.purged_at is not None}

    async def count_purgeable(self, kind: PurgeKind, before: float) -> int:
        self._s.live()
        return sum(self._purgeable(kind, self._s.rows[i], before)
                   for i in self._window(None, before, len(self._s.rows)))
