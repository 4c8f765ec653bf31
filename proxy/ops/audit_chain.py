"""Checking the hash chain (``proxy.store.chain``): `tenang audit verify` and the admin
UI's "verify now" run the same walk here, and both record its outcome.

The walk streams the chain a page at a time in seq order (constant memory however long
the chain is): each entry's head must follow from the previous head and its leaf, and
the leaf must still match its record (unless the record was purged: then the purge must
have happened, see ``chain.request_leaf_now``). It starts at the
beginning, or at a checkpoint someone wrote down (``--from-checkpoint``), and it checks
every stored checkpoint it passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.store import chain
from proxy.store.chain import ChainHead, Checkpoint, Verification, Walk
from proxy.store.errors import StoreError
from proxy.store.protocols import AuditLog, Chain

log = logging.getLogger(__name__)

PAGE = 1000  # entries read, re-read and hashed per step
KNOWN_CHECKPOINTS = 10_000  # stored checkpoints checked along the way (newest)
KNOWN_SWITCHES = 1_000  # [audit] chain switches looked at (newest)


class UnknownCheckpoint(LookupError):
    """``--from-checkpoint`` names a head no checkpoint of this store has."""


async def verify_chain(store: Chain, now: float, *, from_head: bytes | None = None,
                       page: int = PAGE, record: bool = True) -> Verification:
    """Walk the chain (from the checkpoint whose head is ``from_head``, else from the
    start) and return, and with ``record`` keep, the outcome. Raises UnknownCheckpoint."""
    start = ChainHead(0, chain.GENESIS)
    if from_head is not None:
        found = await store.checkpoints(head=from_head, limit=1)
        if not found:
            raise UnknownCheckpoint(from_head.hex())
        start = ChainHead(found[0].seq, found[0].head)
    known = {c.seq: c.head for c in await store.checkpoints(limit=KNOWN_CHECKPOINTS)
             if c.seq > start.seq}
    walk = Walk(start, known)
    broken = await _anchor(store, start)
    while broken is None:
        entries = await store.chain_entries(walk.last.seq, page)
        if not entries:
            broken = walk.finish()
            break
        entries, leaves = await _purged_meanwhile(store, entries,
                                                  await store.current_leaves(entries))
        broken = walk.feed(entries, leaves)
    result = Verification(at=now, ok=broken is None, head_seq=walk.last.seq,
                          checked=walk.checked, from_seq=start.seq, broken=broken)
    if record:
        await store.record_verification(result)
    return result


async def _purged_meanwhile(store: Chain, entries: list[chain.ChainEntry],
                            leaves: list[bytes | None]
                            ) -> tuple[list[chain.ChainEntry], list[bytes | None]]:
    """``entries`` and their leaves as they are now if a record did not match: a purge
    running beside the walk may have purged it (and marked its entry) between reading
    the entries and reading the records, which is no tampering. The leaves are read
    again for the new marks (a tombstone's record is judged as purged or not)."""
    if all(e.purged_at is not None or e.leaf == leaf
           for e, leaf in zip(entries, leaves, strict=True)):
        return entries, leaves
    again = {e.seq: e for e in await store.chain_entries(entries[0].seq - 1, len(entries))}
    now = [again.get(e.seq, e) if e.purged_at is None else e for e in entries]
    if now == entries:
        return entries, leaves
    return now, await store.current_leaves(now)


async def _anchor(store: Chain, start: ChainHead) -> chain.Break | None:
    """The entry a checkpoint names must still carry its head."""
    if start.seq == 0:
        return None
    at = await store.chain_entries(start.seq - 1, 1)
    if not at or at[0].seq != start.seq:
        return chain.Break(start.seq, "chain", "", "the checkpoint's entry is missing")
    if at[0].head != start.head:
        return chain.Break(start.seq, at[0].kind, at[0].ref,
                           "head differs from the checkpoint taken at this seq")
    return None


@dataclass(frozen=True, slots=True)
class OffPeriod:
    """A time the chain was switched off (``[audit] chain = false``): what was stored
    then is in no chain entry, so verification cannot speak for it."""

    since: float
    until: float | None  # None: still off


async def off_periods(audit: AuditLog) -> list[OffPeriod]:
    """Every period the chain was off, oldest first, from the store's switch entries."""
    entries = await audit.audit_entries(target=chain.SWITCH_TARGET, limit=KNOWN_SWITCHES)
    periods: list[OffPeriod] = []
    for e in reversed(entries):  # newest first as read
        if e.actor != chain.SWITCH_ACTOR:
            continue
        if e.action == chain.SWITCHED_OFF and (not periods or periods[-1].until is not None):
            periods.append(OffPeriod(e.at, None))
        elif e.action == chain.SWITCHED_ON and periods and periods[-1].until is None:
            periods[-1] = OffPeriod(periods[-1].since, e.at)
    return periods


def off_since(periods: list[OffPeriod]) -> float | None:
    """When the chain was switched off, if it is off now."""
    return periods[-1].since if periods and periods[-1].until is None else None


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """What the admin UI shows: the last verification and the last checkpoint, and since
    when the chain is off (None: it is on)."""

    last_verification: Verification | None
    last_checkpoint: Checkpoint | None
    running: bool
    off_since: float | None = None


class ChainChecks:
    """The admin UI's side: its status, and one verification at a time in the
    background (a long chain takes a while; the page does not wait for it)."""

    def __init__(self, store: Chain, clock: Callable[[], float] = time.time,
                 audit: AuditLog | None = None) -> None:
        """``audit``: where the chain's switches are read (None: assumed on)."""
        self._store = store
        self._clock = clock
        self._audit = audit
        self._task: asyncio.Task[Verification | None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def status(self) -> ChainStatus:
        checkpoints = await self._store.checkpoints(limit=1)
        off = None if self._audit is None else off_since(await off_periods(self._audit))
        return ChainStatus(await self._store.last_verification(),
                           checkpoints[0] if checkpoints else None, self.running, off)

    def start(self) -> bool:
        """Start a verification unless one is running; False when one already was."""
        if self.running:
            return False
        self._task = asyncio.create_task(self._run(), name="tenang-chain-verify")
        return True

    async def _run(self) -> Verification | None:
        try:
            result = await verify_chain(self._store, self._clock())
        except StoreError as exc:  # nobody awaits this task: say it here
            log.error("hash chain verification could not run: %s", exc)
            return None
        if result.broken is not None:
            log.error("hash chain broken at %s", result.broken.describe())
        return result

    async def wait(self) -> Verification | None:
        """The running verification's outcome (None when none is running)."""
        task = self._task
        return None if task is None else await task

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
