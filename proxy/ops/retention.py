"""Retention (``[retention]``): old final requests lose their bodies, later their rows.

One run walks the store in short batches (``Retention.purge``, one transaction each) and
yields between them, so intake's commits go on while a million rows are purged. Bodies
go first, then rows (their cutoff is the older one, so a row that goes has lost its body
already): each kind's count is then what a dry run counts for it. ``tenang purge`` runs
it once; while serving, ``RetentionJob`` runs it every day at ``run_at`` WIB. Each real
run is recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from proxy.bpjs.service_day import WIB
from proxy.config_ops import RetentionConfig
from proxy.periodic import Periodic
from proxy.store.errors import StoreError, StoreLocked
from proxy.store.protocols import AuditLog, Retention
from proxy.store.records import PurgeKind

log = logging.getLogger("tenang.retention")

DAY_S = 86_400.0
ACTOR = "retention"
# How often the daily job looks at the clock: the clock is injected (tests move it by
# hand), so the job cannot sleep until run_at on the event loop's own timer.
CHECK_INTERVAL_S = 30.0
# After each batch the purge rests this many times as long as the batch took, so it
# holds the database's write lock at most half the time: intake's commits (in this
# process, or in a serving Tenang beside `tenang purge`) find it free between batches
# instead of queueing, or sleeping in SQLite's busy handler, behind a run of them.
REST_PER_BATCH = 1.0
# A write that finds the database locked past busy_timeout_ms (a serving Tenang's group
# commit on a slow disk, beside `tenang purge`) wrote nothing: it is tried again after a
# wait that doubles up to LOCKED_WAIT_MAX_S, for LOCKED_PATIENCE_S in all, instead of
# ending the purge half-way with "database is locked".
LOCKED_FIRST_WAIT_S = 0.1
LOCKED_WAIT_MAX_S = 5.0
LOCKED_PATIENCE_S = 300.0

T = TypeVar("T")


async def patiently(write: Callable[[], Awaitable[T]], what: str, who: str = "retention") -> T:
    """``write()``, tried again while the database stays locked by another writer
    (``who``: the walk logging it, e.g. `tenang rekey`'s)."""
    waited, delay = 0.0, LOCKED_FIRST_WAIT_S
    while True:
        try:
            return await write()
        except StoreLocked as exc:
            if waited >= LOCKED_PATIENCE_S:
                raise
            log.warning("%s: %s: %s (another writer holds the database); waiting "
                        "%.1f s, then trying again", who, what, exc, delay)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, LOCKED_WAIT_MAX_S)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """How many requests a run purged (or, dry, would purge), per kind."""

    dry_run: bool
    counts: dict[PurgeKind, int]
    cutoffs: dict[PurgeKind, float]  # final before this time (Unix seconds)

    def lines(self) -> list[str]:
        verb = "would purge" if self.dry_run else "purged"
        what = {PurgeKind.BODIES: "bodies of", PurgeKind.ROWS: "whole rows of"}
        return [f"{kind.value}: {verb} {what[kind]} {self.counts[kind]} requests "
                f"final before {wib(self.cutoffs[kind])}" for kind in self.counts]


def wib(ts: float) -> str:
    return datetime.fromtimestamp(ts, WIB).strftime("%Y-%m-%d %H:%M WIB")


def cutoffs(config: RetentionConfig, now: float) -> dict[PurgeKind, float]:
    """Per configured kind, in the order a run purges them, the time before which a
    final request is purged."""
    days = {PurgeKind.BODIES: config.bodies_after_days,
            PurgeKind.ROWS: config.rows_after_days}
    return {kind: now - d * DAY_S for kind, d in days.items() if d is not None}


def next_run_at(config: RetentionConfig, now: float) -> float:
    """The first ``run_at`` (WIB) strictly after ``now``."""
    today = datetime.fromtimestamp(now, WIB).date()
    at = datetime.combine(today, config.run_at_time, WIB)
    if at.timestamp() <= now:
        at += timedelta(days=1)
    return at.timestamp()


class Purger:
    """Runs a purge, one at a time (the daily job and an operator never overlap)."""

    def __init__(self, store: Retention, config: RetentionConfig, *,
                 audit: AuditLog | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._audit = audit
        self._config = config
        self._clock = clock
        self._lock = asyncio.Lock()

    async def run(self, *, dry_run: bool = False, actor: str = ACTOR) -> PurgeReport:
        async with self._lock:
            now = self._clock()
            limits = cutoffs(self._config, now)
            counts: dict[PurgeKind, int] = {}
            for kind, before in limits.items():
                if dry_run:
                    counts[kind] = await self._store.count_purgeable(kind, before)
                else:
                    counts[kind] = await self._walk(kind, before, now)
            report = PurgeReport(dry_run, counts, limits)
            if not dry_run and self._audit is not None and limits:
                await patiently(partial(self._audit.audit, actor, "purge", None,
                                        "; ".join(report.lines()), self._clock()),
                                "recording the purge")
            return report

    async def _walk(self, kind: PurgeKind, before: float, now: float) -> int:
        total, after_id = 0, None
        while True:
            started = time.monotonic()
            batch = await patiently(
                partial(self._store.purge, kind, before, after_id, self._config.batch_size,
                        now), f"a {kind.value} batch")
            total += batch.purged
            if batch.after_id is None:
                return total
            after_id = batch.after_id
            # Pacing, not waiting for anything: the write lock is free meanwhile.
            await asyncio.sleep((time.monotonic() - started) * REST_PER_BATCH)


class RetentionJob:
    """The daily purge while serving: ``start()``, then ``await stop()`` (idempotent)."""

    def __init__(self, purger: Purger, config: RetentionConfig, *,
                 clock: Callable[[], float] = time.time,
                 check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self._purger = purger
        self._config = config
        self._clock = clock
        self._check_interval_s = check_interval_s
        self._due: float | None = None  # the next run: set at the first look
        self._loop = Periodic("retention", self._check, self._wait_s, log)
        self.checks = 0  # looks at the clock so far, and runs completed (tests read them)
        self.runs = 0

    @property
    def started(self) -> bool:
        return self._loop.started

    def start(self) -> None:
        if self._config.enabled:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def _wait_s(self) -> float:
        left = 0.0 if self._due is None else self._due - self._clock()
        return min(self._check_interval_s, max(0.0, left))

    async def _check(self) -> None:
        """One look at the clock, and the purge if it is due."""
        now = self._clock()
        self.checks += 1
        if self._due is None:
            self._due = next_run_at(self._config, now)
        if now < self._due:
            return
        try:
            report = await self._purger.run()
            for line in report.lines():
                log.info("retention: %s", line)
        except StoreError as exc:
            log.error("retention: the daily purge stopped: %s (next try at %s)", exc,
                      wib(next_run_at(self._config, self._clock())))
        finally:  # a bug too waits for the next day, or the purge would run on and on
            self.runs += 1
            self._due = next_run_at(self._config, self._clock())
