"""The state every in-memory role object shares, and the moves they all make on it.

No durability: for unit tests and the contract tests' second backend. There is no
``await`` inside a verb's change, so each verb is one step of the event loop, as a
transaction would be. This object is also the backend's ``Engine``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy import lifecycle
from proxy.lifecycle import Status
from proxy.store import chain
from proxy.store.chain import ChainEntry, ChainHead, Checkpoint, Verification
from proxy.store.errors import StoreUnavailable
from proxy.store.records import (
    AuditEntry,
    BulkJobRecord,
    CallbackStatus,
    MaintenanceWindow,
    NewCallback,
    Session,
    StoredAttempt,
    StoredCallback,
    StoredRequest,
    User,
)

# What free_bytes reports: the memory holds no disk.
UNBOUNDED = 1 << 62


def moved(row: StoredRequest, status: Status, **changes: Any) -> StoredRequest:
    """``row`` in ``status``: every state change of this backend goes through here, so a
    move ``lifecycle.ALLOWED`` lacks raises ``IllegalTransition`` before anything changes."""
    lifecycle.ensure_allowed(row.status, status)
    return dataclasses.replace(row, status=status, **changes)


@dataclass
class MemoryState:
    rows: dict[str, StoredRequest] = field(default_factory=dict)
    attempts: dict[str, list[StoredAttempt]] = field(default_factory=dict)
    callbacks: dict[int, StoredCallback] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    windows: dict[int, MaintenanceWindow] = field(default_factory=dict)
    bulk_jobs: dict[int, BulkJobRecord] = field(default_factory=dict)
    hash_chain: list[ChainEntry] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    bulk_leases: dict[int, tuple[str, float]] = field(default_factory=dict)  # owner, until
    closed: bool = False
    chain_on: bool = True  # [audit] chain: False, links are dropped (``link``)

    # --- Engine --------------------------------------------------------------------------

    async def open(self) -> None:
        self.closed = False
        self.note_chain_switch(time.time())

    def note_chain_switch(self, at: float) -> None:
        """Opened with the chain switched the other way than it was last: the audit
        entry saying so, linked either way (as on every backend)."""
        last = next((e.action for e in reversed(self.audit)
                     if e.target == chain.SWITCH_TARGET and e.actor == chain.SWITCH_ACTOR
                     and e.action in (chain.SWITCHED_ON, chain.SWITCHED_OFF)), None)
        action = chain.switch_action(last, self.chain_on)
        if action is not None:
            entry = AuditEntry(len(self.audit) + 1, at, chain.SWITCH_ACTOR, action,
                               chain.SWITCH_TARGET, chain.switch_detail(self.chain_on))
            self.audit.append(entry)
            self.hash_chain.extend(chain.extend(self.head(), [chain.audit_link(entry)]))

    async def close(self) -> None:
        self.closed = True

    async def check_writable(self) -> None:
        self.live()

    def free_bytes(self) -> int:
        return UNBOUNDED

    # --- shared by the role objects ------------------------------------------------------

    def live(self) -> None:
        if self.closed:
            raise StoreUnavailable("store is closed")

    def queue_callback(self, request_id: str, callback: NewCallback, now: float) -> None:
        """Queue ``callback`` for ``request_id`` (inside the caller's move)."""
        new_id = max(self.callbacks, default=0) + 1
        self.callbacks[new_id] = StoredCallback(
            id=new_id, request_id=request_id, upstream=self.rows[request_id].upstream,
            url=callback.url, payload=callback.payload, status=CallbackStatus.PENDING,
            attempts=0, next_attempt_at=now, lease_expires_at=None, last_error=None,
            created_at=now, updated_at=now)

    def append_audit(self, actor: str, action: str, target: str | None, detail: str | None,
                     at: float) -> None:
        entry = AuditEntry(len(self.audit) + 1, at, actor, action, target, detail)
        self.audit.append(entry)
        self.link([chain.audit_link(entry)])

    def head(self) -> ChainHead:
        last = self.hash_chain[-1] if self.hash_chain else None
        return ChainHead(0, chain.GENESIS) if last is None else ChainHead(last.seq, last.head)

    def link(self, links: list[chain.Link]) -> None:
        """Extend the chain (inside the caller's move: no await between them)."""
        if self.chain_on:
            self.hash_chain.extend(chain.extend(self.head(), links))

    def mark_purged(self, kind: chain.Kind, refs: Iterable[str], at: float) -> int:
        """Tombstones: the entries of ``kind`` for ``refs`` marked purged at ``at``
        (``Chain.mark_purged``, and retention's purge in the same move)."""
        wanted = set(refs)
        marked = 0
        for i, e in enumerate(self.hash_chain):
            if e.kind is kind and e.ref in wanted and e.purged_at is None:
                self.hash_chain[i] = dataclasses.replace(e, purged_at=at)
                marked += 1
        return marked

    def link_states(self, rows: Sequence[tuple[str, str | None]], before: str, after: str,
                    at: float) -> None:
        """One state entry per (request id, reason) moved ``before`` -> ``after``, in id
        order (as the SQL backend does)."""
        self.link([chain.state_link(rid, before, after, reason, at)
                   for rid, reason in sorted(rows)])

    def first_earlier(self, row: StoredRequest,
                      statuses: frozenset[Status]) -> StoredRequest | None:
        """The first request before ``row`` with its ordering key in one of ``statuses``."""
        if row.ordering_key is None:
            return None
        return min((p for p in self.rows.values()
                    if p.ordering_key == row.ordering_key and p.id < row.id
                    and p.status in statuses), key=lambda p: p.id, default=None)

    def end_sessions(self, name: str) -> None:
        for key in [k for k, s in self.sessions.items() if s.user_name == name]:
            del self.sessions[key]
