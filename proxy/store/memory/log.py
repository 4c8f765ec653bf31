"""In-memory ``RequestLog``."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.lifecycle import Verdict
from proxy.store.admin_filter import in_id_range, is_open_sep, matches
from proxy.store.memory.state import MemoryState
from proxy.store.records import (
    SCAN_WINDOW,
    AttemptBucket,
    RequestFilter,
    RequestPage,
    StoredAttempt,
    StoredRequest,
    UpstreamSummary,
)
from proxy.store.summary import summarise


class MemoryLog:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def get(self, request_id: str) -> StoredRequest | None:
        self._s.live()
        return self._s.rows.get(request_id)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        self._s.live()
        return list(self._s.attempts.get(request_id, []))

    def _candidates(self, f: RequestFilter, cursor: str | None) -> list[StoredRequest]:
        self._s.live()
        return sorted((r for r in self._s.rows.values() if in_id_range(f, r, cursor)),
                      key=lambda r: r.id, reverse=True)

    async def find_requests(self, f: RequestFilter, *, limit: int, cursor: str | None,
                            scan_window: int = SCAN_WINDOW) -> RequestPage:
        candidates = self._candidates(f, cursor)
        boundary = None
        if f.needs_scan and len(candidates) >= scan_window:
            candidates = candidates[:scan_window]
            boundary = candidates[-1].id
        found = [r for r in candidates if matches(f, r)]
        items = found[:limit]
        if len(found) > limit:
            return RequestPage(items, items[-1].id)
        if boundary is not None:
            return RequestPage(items, boundary, capped=True)
        return RequestPage(items, None)

    async def count_requests(self, f: RequestFilter) -> int:
        return sum(1 for r in self._candidates(f, None) if matches(f, r))

    async def summary(self) -> dict[str, UpstreamSummary]:
        s = self._s
        s.live()
        return summarise(
            ((r.id, r.upstream, r.status, r.received_at) for r in s.rows.values()),
            ((s.rows[a.request_id].upstream, a.started_at, a.verdict)
             for a in self._all_attempts()),
        )

    async def attempt_buckets(self, upstream: str, since: float,
                              bucket_s: float) -> list[AttemptBucket]:
        self._s.live()
        buckets: dict[int, dict[Verdict, int]] = {}
        for a in self._all_attempts():
            if a.started_at >= since and self._s.rows[a.request_id].upstream == upstream:
                counts = buckets.setdefault(int((a.started_at - since) / bucket_s), {})
                counts[a.verdict] = counts.get(a.verdict, 0) + 1
        return [AttemptBucket(since + b * bucket_s, buckets[b]) for b in sorted(buckets)]

    def _all_attempts(self) -> Iterable[StoredAttempt]:
        return (a for attempts in self._s.attempts.values() for a in attempts)

    async def sep_open_counts(self) -> dict[str, int]:
        self._s.live()
        out: dict[str, int] = {}
        for r in self._s.rows.values():
            if is_open_sep(r):
                out[r.upstream] = out.get(r.upstream, 0) + 1
        return out
