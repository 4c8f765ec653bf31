"""Store contract: an operator's transition and its audit entry are one verb and one
transaction: both are written, or (Conflict, a failing audit write) neither is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.lifecycle import Status, Transition
from proxy.store.backend import Backend
from proxy.store.errors import Conflict, StoreError
from proxy.store.records import NewAudit, NewCallback
from proxy.store.sqlite import sqlite_backend
from tests.store.test_contract import T0, put, req

CANCEL = Transition(Status.CANCELLED, "cancelled by an operator")
HOOK = NewCallback("http://127.0.0.1:9/hook", b"{}")
WHO = NewAudit("ops", "cancel", "pending -> cancelled")


async def test_a_transition_writes_its_audit_entry_with_it(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.operator.transition(r.id, Status.PENDING, CANCEL, T0 + 5, audit=WHO)
    moved = await store.log.get(r.id)
    assert moved is not None and moved.status is Status.CANCELLED
    (entry,) = await store.audit.audit_entries(target=r.id)
    assert (entry.at, entry.actor, entry.action, entry.target, entry.detail) == (
        T0 + 5, "ops", "cancel", r.id, "pending -> cancelled")


async def test_a_conflicting_transition_writes_no_audit_entry(store: Backend) -> None:
    (r,) = await put(store, req(1))
    with pytest.raises(Conflict):
        await store.operator.transition(r.id, Status.FAILED, CANCEL, T0 + 5, audit=WHO)
    assert await store.audit.audit_entries(target=r.id) == []


async def test_a_failing_audit_write_leaves_the_state_and_callback_unwritten(
        tmp_path: Path) -> None:
    path = tmp_path / "tenang.db"
    store = sqlite_backend(path, busy_timeout_ms=2_000)
    await store.open()
    try:
        (r,) = await put(store, req(1))
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                     "BEGIN SELECT RAISE(ABORT, 'audit log refused'); END")
        conn.close()
        with pytest.raises(StoreError, match="audit log refused"):
            await store.operator.transition(r.id, Status.PENDING, CANCEL, T0 + 5, callback=HOOK,
                                            audit=WHO)
        kept = await store.log.get(r.id)
        assert kept is not None and kept.status is Status.PENDING and kept.updated_at == T0 + 1
        assert await store.outbox.claim_callbacks(T0 + 10, 10, T0 + 70) == []
    finally:
        await store.close()
