"""The Coordination and SendSlots roles kept in process: for the stores only one Tenang
instance opens (SQLite, whose file one process holds, and memory).

With one instance there is no one to agree with: the relay keeps its own in-process
breaker, token bucket and slot count on these stores (``shared`` is False) and never
calls the verbs below. They still keep the contract (the contract suite runs them), in
plain dicts, with the same arithmetic as the PostgreSQL statements; nothing survives a
restart, like the in-process breaker and bucket themselves.
"""

from __future__ import annotations

import dataclasses
import math

from proxy.store.records import BreakerRecord


def granted_tokens(tokens: float, at: float, wanted: int, now: float, per_second: float,
                   burst: float) -> tuple[int, float]:
    """A token bucket's take: how many of ``wanted`` are granted, and the tokens left.
    The bucket never loses time to a clock behind ``at`` (another instance's)."""
    available = min(burst, tokens + max(0.0, now - at) * per_second)
    granted = max(0, min(wanted, math.floor(available)))
    return granted, available - granted


class InProcessCoordination:
    def __init__(self) -> None:
        self._breakers: dict[str, BreakerRecord] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # upstream: (tokens, at)

    @property
    def shared(self) -> bool:
        return False

    async def breaker(self, upstream: str) -> BreakerRecord:
        return self._breakers.setdefault(
            upstream, BreakerRecord(upstream, "closed", 0, None, None, None))

    async def move_breaker(self, upstream: str, generation: int, state: str,
                           opened_at: float | None) -> BreakerRecord | None:
        current = await self.breaker(upstream)
        if current.generation != generation:
            return None
        moved = BreakerRecord(upstream, state, generation + 1, opened_at, None, None)
        self._breakers[upstream] = moved
        return moved

    async def lease_probe(self, upstream: str, owner: str, now: float,
                          reset_timeout_s: float, until: float) -> BreakerRecord | None:
        b = await self.breaker(upstream)
        if b.state == "closed" or b.opened_at is None or b.opened_at + reset_timeout_s > now \
                or (b.probe_until is not None and b.probe_until > now):
            return None
        leased = dataclasses.replace(b, state="half-open", generation=b.generation + 1,
                                     probe_owner=owner, probe_until=until)
        self._breakers[upstream] = leased
        return leased

    async def take_send_tokens(self, upstream: str, wanted: int, now: float,
                               per_second: float, burst: float) -> int:
        tokens, at = self._buckets.get(upstream, (burst, now))
        granted, left = granted_tokens(tokens, at, wanted, now, per_second, burst)
        self._buckets[upstream] = (left, max(at, now))
        return granted

    async def return_send_tokens(self, upstream: str, count: int, burst: float) -> None:
        if upstream in self._buckets:
            tokens, at = self._buckets[upstream]
            self._buckets[upstream] = (min(burst, tokens + count), at)


class InProcessSendSlots:
    def __init__(self) -> None:
        self._slots: dict[str, dict[int, tuple[str, float]]] = {}  # upstream: slot: lease
        self._live_waits: dict[str, dict[str, float]] = {}  # upstream: owner: until

    @property
    def shared(self) -> bool:
        return False

    async def take_send_slots(self, upstream: str, owner: str, wanted: int, limit: int,
                              now: float, until: float) -> list[int]:
        waits = self._live_waits.get(upstream, {})
        if any(other != owner and t > now for other, t in waits.items()):
            return []
        return self._take_slots(upstream, owner, wanted, limit, now, until)

    def _take_slots(self, upstream: str, owner: str, wanted: int, limit: int,
                    now: float, until: float) -> list[int]:
        held = self._slots.setdefault(upstream, {})
        free = [n for n in range(limit) if n not in held or held[n][1] <= now][:max(0, wanted)]
        for n in free:
            held[n] = (owner, until)
        return free

    async def take_live_send_slot(self, upstream: str, owner: str, limit: int, now: float,
                                  until: float, waiting_until: float) -> int | None:
        taken = self._take_slots(upstream, owner, 1, limit, now, until)
        if taken:
            return taken[0]
        waits = self._live_waits.setdefault(upstream, {})
        waits[owner] = max(waits.get(owner, 0.0), waiting_until)
        return None

    async def end_live_wait(self, upstream: str, owner: str) -> None:
        self._live_waits.get(upstream, {}).pop(owner, None)

    async def renew_send_slots(self, upstream: str, owner: str, slots: list[int],
                               until: float) -> list[int]:
        held = self._slots.get(upstream, {})
        mine = sorted(n for n in set(slots) if n in held and held[n][0] == owner)
        for n in mine:
            held[n] = (owner, until)
        return mine

    async def return_send_slots(self, upstream: str, owner: str, slots: list[int]) -> None:
        held = self._slots.get(upstream, {})
        for n in slots:
            if n in held and held[n][0] == owner:
                del held[n]
