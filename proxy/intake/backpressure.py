"""Backpressure: past a cap of queued requests per upstream, or below a free-disk floor,
intake refuses (503 with the reason) instead of accepting what it cannot hold.

Neither check may cost intake a store query per request, nor stall it:

- **The queue cap** keeps a running count per upstream: one count from the store the
  first time it is needed (every request arriving meanwhile waits on that same count),
  then +1 per accepted request and -1 per request that reached a final state, and a
  recount in the background now and then to correct what the events miss (operator
  retries and cancels). At most one count per upstream is in flight, and recounts are
  spaced so counting takes at most ~5% of the time whatever the backlog's size.
- **A shared store** (PostgreSQL, several instances on one queue): the cap is global, so
  the count is the store's, not this process's. The events above only see this
  instance's accepts, so the count is read again every ``SHARED_REFRESH_S`` (0.1 s)
  instead of every second; the store keeps it in a few counter rows (no scan), so a
  read costs well under a millisecond. Between two reads the count misses only what
  the *other* instances accepted in that time: the global queue can pass the cap by at
  most their accept rate times (0.1 s + one count's duration), e.g. 100 requests at
  500/s per instance for three instances, against caps of thousands. An exact cap would
  need a count inside every insert's transaction: one more round trip per request on
  the hot path, for a limit that is a safety valve, not a quota.
- **The disk floor** samples free space at most once a second, and in between charges
  every admitted request a conservative estimate of what storing it costs (the row, its
  copy in the WAL, index entries and page slack) from the moment it is admitted. A burst
  of thousands of requests inside one second therefore cannot go through the floor: the
  floor is what keeps room for the relay to record outcomes. The backend reports the
  free space (``Backend.free_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.config import Config, UpstreamConfig
from proxy.lifecycle import QUEUED, Status
from proxy.store.errors import StoreError
from proxy.store.protocols import Intake
from proxy.store.records import NewRequest

log = logging.getLogger("tenang.backpressure")

REFRESH_S = 1.0
# With several instances on one store: how old a count may be (see the module docstring).
SHARED_REFRESH_S = 0.1
# A recount waits at least this many times as long as the last one took (<= 5% duty).
RECOUNT_SPACING = 20.0
MIB = 1024 * 1024
# Per request on top of its bytes (counted twice: table and WAL). A commit appends whole
# 4 KiB pages to the WAL for the table and every index it touches: measured on tmpfs
# (tests/integration/test_disk_full.py), ~6 KB per 2 KB request in a group of hundreds,
# ~40 KB for one committed alone. Errs high; sampling by bytes keeps the excess small.
# The hash chain (schema v11) adds its row and two index pages to each commit's WAL.
ROW_OVERHEAD = 24 * 1024
# Re-sample free space after this many bytes admitted (or a quarter of the room left).
SAMPLE_BYTES = 64 * 1024
# Readiness wants room for a typical request above the floor, not just any room: a
# balancer stops sending a little before intake starts refusing.
READY_HEADROOM = 64 * 1024


def storage_cost(call: NewRequest) -> int:
    """A conservative estimate of the disk bytes that storing ``call`` takes."""
    text = (len(call.id) + len(call.upstream) + len(call.method) + len(call.path)
            + len(call.query) + len(call.endpoint or "") + len(call.ordering_key or "")
            + len(call.dedup_key or "") + len(call.coalesce_key or "")
            + sum(len(k) + len(v) for k, v in call.headers))
    return 2 * (len(call.body) + text) + ROW_OVERHEAD


@dataclass(slots=True)
class _Count:
    """The running count of one upstream's queued (pending, in flight, held) requests."""

    value: int | None = None  # None: never counted yet
    counted_at: float = float("-inf")
    took_s: float = 0.0
    accepted_total: int = 0  # every accept ever, to credit those during a count
    task: asyncio.Task[int] | None = None


@dataclass(frozen=True, slots=True)
class UpstreamReadiness:
    name: str
    queued: int | None
    max_pending: int

    @property
    def full(self) -> bool:
        return bool(self.max_pending) and (self.queued or 0) >= self.max_pending


@dataclass(frozen=True, slots=True)
class DiskReadiness:
    free_bytes: int  # the last sample minus what was admitted since
    min_free_bytes: int
    refusing: bool  # intake refused a request for the floor since the last sample

    @property
    def low(self) -> bool:
        return bool(self.min_free_bytes) and (
            self.refusing or self.free_bytes < self.min_free_bytes + READY_HEADROOM)


def _no_disk() -> int:
    return 0


class DiskFloor:
    """Free space on the database's disk, sampled at least once a second and whenever
    the bytes admitted since (stored or in flight) reach a quarter of the room above the
    floor, minus an
    estimate of everything admitted that the sample may not show yet."""

    def __init__(self, min_free_bytes: int, free_bytes: Callable[[], int],
                 clock: Callable[[], float]) -> None:
        self.min_free_bytes = min_free_bytes
        self.clock = clock
        self.free_bytes = free_bytes
        self._sampled_at = float("-inf")
        self._sample = 0
        self._in_flight = 0  # admitted, store call not finished: not in any sample yet
        self._since_sample = 0  # stored since the last sample (in it, or not: count it)
        self._refusing = False

    def _refresh(self) -> None:
        now = self.clock()
        room = self._sample - self.min_free_bytes
        # In flight counts too: a burst admitted at once against a stale sample (the
        # disk filled by something else since) would otherwise all be reserved before
        # any of it is stored and counted.
        if now - self._sampled_at < REFRESH_S and self._since_sample + self._in_flight < max(
                SAMPLE_BYTES, room // 4):
            return
        self._sampled_at = now
        try:
            self._sample = self.free_bytes()
        except OSError:
            self._sample = 0
        self._since_sample = 0
        self._refusing = False

    def estimate(self) -> int:
        """Free bytes now, as far as intake may count on them."""
        self._refresh()
        return self._sample - self._in_flight - self._since_sample

    def refusal(self, cost: int) -> str | None:
        """Why ``cost`` more bytes may not be admitted now; None: they are reserved, and
        the caller must call ``stored(cost)`` once the store call ends."""
        if not self.min_free_bytes:
            return None
        free = self.estimate()
        if free - cost < self.min_free_bytes:
            self._refusing = True
            return (f"disk almost full ({max(free, 0) / MIB:.1f} MiB free, floor "
                    f"store.min_free_mb={self.min_free_bytes // MIB})")
        self._in_flight += cost
        return None

    def stored(self, cost: int) -> None:
        """The store call for an admitted ``cost`` ended (committed or not)."""
        if not self.min_free_bytes:
            return
        self._in_flight = max(0, self._in_flight - cost)
        # Counted until the next sample even if it failed: errs towards refusing.
        self._since_sample += cost

    def readiness(self) -> DiskReadiness:
        free = self.estimate() if self.min_free_bytes else 0
        return DiskReadiness(free, self.min_free_bytes, self._refusing)


class Backpressure:
    def __init__(self, config: Config, store: Intake,
                 clock: Callable[[], float] = time.monotonic,
                 free_bytes: Callable[[], int] | None = None) -> None:
        """``free_bytes``: what the backend reports (``Backend.free_bytes``); None
        reports no disk, and the floor is off."""
        self.store = store
        self.clock = clock
        self.caps = {u.name: u.max_pending for u in config.upstreams}
        # Several instances share a PostgreSQL queue; its disk is the database server's,
        # out of this host's sight (Engine.free_bytes): no floor to keep here.
        shared = config.store.is_postgres
        self.refresh_s = SHARED_REFRESH_S if shared else REFRESH_S
        floor = config.store.min_free_mb * MIB if free_bytes is not None and not shared \
            else 0
        self.disk = DiskFloor(floor, free_bytes or _no_disk, clock)
        self._counts: dict[str, _Count] = {}

    async def refusal(self, upstream: UpstreamConfig, call: NewRequest | None = None
                      ) -> str | None:
        """Why a new request for ``upstream`` must be refused now, or None.

        With ``call``, None also reserves its storage cost against the disk floor until
        ``stored(call)``. Raises StoreError when the queue has never been counted and
        cannot be (database locked or closed): intake then refuses with the store's
        reason, as for a failed insert; the next request tries to count again."""
        cap = upstream.max_pending
        if cap and await self.queued(upstream.name) >= cap:
            return (f"queue for {upstream.name} is full ({cap} requests waiting, "
                    "upstreams.max_pending); BPJS is likely down")
        return self.disk.refusal(0 if call is None else storage_cost(call))

    def stored(self, call: NewRequest) -> None:
        """The store call for an admitted ``call`` ended, whatever its outcome."""
        self.disk.stored(storage_cost(call))

    def accepted(self, upstream: str) -> None:
        count = self._counts.get(upstream)
        if count is not None:
            count.accepted_total += 1
            if count.value is not None:
                count.value += 1

    def finished(self, upstream: str, request_id: str, status: Status, reason: str) -> None:
        """An Observer's ``finished``: a request that settled leaves the queue."""
        count = self._counts.get(upstream)
        if status not in QUEUED and count is not None and count.value:
            count.value -= 1

    async def queued(self, upstream: str) -> int:
        """The running count; only the very first call waits for the store (shared)."""
        count = self._counts.setdefault(upstream, _Count())
        due = self.clock() - count.counted_at >= max(self.refresh_s,
                                                     RECOUNT_SPACING * count.took_s)
        if count.task is None and (count.value is None or due):
            count.task = asyncio.ensure_future(self._count(upstream, count))
            # A waiter cancelled meanwhile must not leave the error unretrieved.
            count.task.add_done_callback(lambda t: t.cancelled() or t.exception())
        if count.value is not None:
            return count.value
        assert count.task is not None
        return await asyncio.shield(count.task)

    async def _count(self, upstream: str, count: _Count) -> int:
        started, accepted_before = self.clock(), count.accepted_total
        try:
            value = await self.store.count_queued(upstream)
        except StoreError as exc:
            if count.value is None:
                raise  # the waiters refuse with the store's reason
            # In the background: keep the running count and try again later.
            log.warning("cannot recount the queue of %s: %s", upstream, exc,
                        extra={"upstream": upstream})
            count.counted_at = self.clock()
            return count.value
        finally:
            count.task = None
        # Accepts during the count may or may not be in it: counted, to err high.
        count.value = value + count.accepted_total - accepted_before
        count.took_s = self.clock() - started
        count.counted_at = self.clock()
        return count.value

    async def readiness(self) -> tuple[DiskReadiness, list[UpstreamReadiness]]:
        """Whether intake can accept now, from the running state (no full counts)."""
        upstreams = []
        for name, cap in self.caps.items():
            queued = None
            if cap:
                queued = await self.queued(name)
            upstreams.append(UpstreamReadiness(name, queued, cap))
        return self.disk.readiness(), upstreams

    async def close(self) -> None:
        for count in self._counts.values():
            if count.task is not None:
                count.task.cancel()
                with contextlib.suppress(BaseException):
                    await count.task
