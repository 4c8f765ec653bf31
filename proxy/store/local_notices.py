"""``Notices`` for a store one instance owns (SQLite, memory): there is no other instance
to page instead, so the record lives in this process, with the same rules as the shared
one (``postgres/notices``): one claim per condition and window, one all-clear per claim."""

from __future__ import annotations


class LocalNotices:
    def __init__(self) -> None:
        self._claimed: dict[tuple[str, str], tuple[float, bool]] = {}  # at, still open

    async def claim_notice(self, condition: str, upstream: str, at: float,
                           window_s: float) -> bool:
        last = self._claimed.get((condition, upstream))
        if last is not None and last[0] > at - window_s:
            return False
        self._claimed[(condition, upstream)] = (at, True)
        return True

    async def claim_all_clear(self, condition: str, upstream: str) -> bool:
        last = self._claimed.get((condition, upstream))
        if last is None or not last[1]:
            return False
        self._claimed[(condition, upstream)] = (last[0], False)
        return True
