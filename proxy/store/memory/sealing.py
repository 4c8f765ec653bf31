"""In-memory ``Sealing``: the memory holds nothing at rest, so every value is kept as
it is (plaintext to the walk and its counts) and a rekey re-seals nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proxy.store.memory.state import MemoryState
from proxy.store.records import ResealBatch


class MemorySealing:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def reseal(self, after_id: str | None, limit: int) -> ResealBatch:
        ids = sorted(i for i in self._s.rows if i > (after_id or ""))[:limit]
        return ResealBatch(len(ids), 0, ids[-1] if ids and len(ids) == limit else None)

    async def sealed_counts(self) -> Mapping[str | None, int]:
        n = sum(1 for r in self._s.rows.values() if r.body)
        n += sum(1 for found in self._s.attempts.values() for a in found if a.response_body)
        n += sum(1 for c in self._s.callbacks.values() if c.payload)
        return {None: n} if n else {}

    async def retire_keys(self, key_ids: Sequence[str], now: float) -> None:
        return None
