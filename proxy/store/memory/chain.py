"""In-memory ``Chain`` (the role objects extend ``MemoryState.hash_chain`` in their moves)."""

from __future__ import annotations

from collections.abc import Sequence

from proxy.store import chain
from proxy.store.chain import ChainEntry, ChainHead, Checkpoint, Kind, Verification
from proxy.store.memory.state import MemoryState


class MemoryChain:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def chain_head(self) -> ChainHead:
        self._s.live()
        return self._s.head()

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        self._s.live()
        return [e for e in self._s.hash_chain if e.seq > after_seq][:limit]

    async def current_leaves(self, entries: Sequence[ChainEntry]) -> list[bytes | None]:
        self._s.live()
        return [self._leaf(e) for e in entries]

    def _leaf(self, e: ChainEntry) -> bytes | None:
        s = self._s
        if e.kind is Kind.STATE:
            return chain.state_leaf_of(e)
        if e.kind is Kind.REQUEST:
            return chain.request_leaf_now(e, s.rows.get(e.ref))
        if e.kind is Kind.ATTEMPT:
            request_id, _, number = e.ref.rpartition("/")
            found = [a for a in s.attempts.get(request_id, []) if str(a.number) == number]
            return chain.attempt_leaf_now(e, found[0] if found else None,
                                          s.rows.get(request_id))
        audit = [a for a in s.audit if str(a.id) == e.ref]
        return chain.audit_link(audit[0]).leaf if audit else None

    async def checkpoint(self, at: float, note: str | None = None) -> Checkpoint:
        self._s.live()
        head = self._s.head()
        taken = Checkpoint(head.seq, head.head, at, note)
        self._s.checkpoints.append(taken)
        return taken

    async def checkpoints(self, *, head: bytes | None = None,
                          limit: int = 100) -> list[Checkpoint]:
        self._s.live()
        return [c for c in reversed(self._s.checkpoints)
                if head is None or c.head == head][:limit]

    async def mark_purged(self, kind: Kind, refs: Sequence[str], at: float) -> int:
        self._s.live()
        return self._s.mark_purged(kind, refs, at)

    async def record_verification(self, result: Verification) -> None:
        self._s.live()
        self._s.verifications.append(result)

    async def last_verification(self) -> Verification | None:
        self._s.live()
        return self._s.verifications[-1] if self._s.verifications else None
