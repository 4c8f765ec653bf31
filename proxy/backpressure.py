"""Backpressure: past a cap of queued requests per upstream, or below a free-disk floor,
intake refuses (503 with the reason) instead of accepting what it cannot hold.

Counts come from the store at most once a second per upstream, plus what was accepted
since, so the check costs intake nothing on most requests.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from proxy.config import Config, UpstreamConfig
from proxy.store.base import Store

REFRESH_S = 1.0


class Backpressure:
    def __init__(self, config: Config, store: Store,
                 clock: Callable[[], float] = time.monotonic,
                 free_bytes: Callable[[Path], int] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.min_free_bytes = config.store.min_free_mb * 1024 * 1024
        self.db_dir = config.store.sqlite_path.parent
        self.free_bytes = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._queued: dict[str, int] = {}
        self._counted_at: dict[str, float] = {}
        self._disk_checked_at = float("-inf")
        self._disk_free = 0

    async def refusal(self, upstream: UpstreamConfig) -> str | None:
        """Why a new request for ``upstream`` must be refused now, or None.

        Raises StoreError when the queue cannot be counted (database locked or closed):
        intake then refuses with the store's reason, as for a failed insert. Nothing is
        remembered, so the next request counts again."""
        now = self.clock()
        if self.min_free_bytes:
            if now - self._disk_checked_at >= REFRESH_S:
                self._disk_checked_at = now
                try:
                    self._disk_free = self.free_bytes(self.db_dir)
                except OSError:
                    self._disk_free = 0
            if self._disk_free < self.min_free_bytes:
                return (f"disk almost full ({self._disk_free // (1024 * 1024)} MiB free, "
                        f"floor store.min_free_mb={self.min_free_bytes // (1024 * 1024)})")
        cap = upstream.max_pending
        if cap:
            if now - self._counted_at.get(upstream.name, float("-inf")) >= REFRESH_S:
                self._queued[upstream.name] = await self.store.count_queued(upstream.name)
                self._counted_at[upstream.name] = now
            if self._queued.get(upstream.name, 0) >= cap:
                return (f"queue for {upstream.name} is full ({cap} requests waiting, "
                        "upstreams.max_pending); BPJS is likely down")
        return None

    def accepted(self, upstream: str) -> None:
        if upstream in self._queued:
            self._queued[upstream] += 1
