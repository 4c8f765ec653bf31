"""The hash chain, on every backend: what joins it, that it verifies, checkpoints, purge
marks and recorded verifications; and that the same moves make the same chain on each
backend (the encoding is backend-neutral)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from proxy.lifecycle import Status, Transition, Verdict
from proxy.ops.audit_chain import UnknownCheckpoint, verify_chain
from proxy.store import chain
from proxy.store.backend import Backend
from proxy.store.chain import GENESIS, ChainEntry, Kind
from proxy.store.memory import memory_backend
from proxy.store.memory.chain import MemoryChain
from proxy.store.memory.state import MemoryState
from proxy.store.records import NewAudit, NewCallback, NewRequest, PurgeKind
from tests.store.conftest import BACKENDS
from tests.store.test_contract import OTHER, T0, UP, attempt, put, req
from tests.store.test_retention_contract import CUTOFF, NOW, in_state, purge_all


async def entries(store: Backend) -> list[ChainEntry]:
    return await store.chain.chain_entries(0, 10_000)


def requests() -> list[NewRequest]:
    return [req(1), req(2), req(3, upstream=OTHER), req(4, ordering_key="kodebooking=KB1"),
            req(5, ordering_key="kodebooking=KB1"), req(6, coalesce_key="bed=1"),
            req(7, coalesce_key="bed=1")]


async def history(store: Backend, stored: list[NewRequest] | None = None) -> None:
    """A little of everything that joins the chain: intake, claims, attempts, an outcome
    with its callback, an operator's move with its audit entry, a hold and its release,
    a supersede, a take-over and a plain audit entry."""
    a, b, c, held_parent, held_child, *coalesced = await put(store, *(stored or requests()))
    claimed = await store.queue.claim_due(UP, T0 + 10, 10, "w1", T0 + 40)
    assert {r.id for r in claimed} == {a.id, b.id, held_parent.id, coalesced[0].id,
                                       coalesced[1].id}
    await store.queue.complete_attempt(
        a.id, "w1", attempt(1, T0 + 11, Verdict.SUCCESS, http_status=200, error=None,
                            response_body=b'{"metadata":{"code":200}}'),
        Transition(Status.SUCCEEDED, "delivered"), T0 + 12,
        NewCallback("http://simrs.local/cb", b'{"status":"succeeded"}'))
    await store.queue.complete_attempt(
        held_parent.id, "w1", attempt(1, T0 + 11, Verdict.PERMANENT, http_status=200),
        Transition(Status.FAILED, "rejected"), T0 + 12)
    assert [r.id for r in await store.queue.refresh_holds(UP, T0 + 13)] == [held_child.id]
    await store.operator.transition(held_parent.id, Status.FAILED,
                                    Transition(Status.CANCELLED, "cancelled by siti"),
                                    T0 + 14, audit=NewAudit("siti", "cancel", "wrong day"))
    assert await store.queue.refresh_holds(UP, T0 + 15) == []  # the child is released
    for r in coalesced:
        await store.queue.complete_attempt(r.id, "w1", None,
                                           Transition(Status.PENDING, "handed back"), T0 + 16)
    assert await store.queue.supersede([coalesced[0].id], coalesced[1].id, T0 + 17) == [
        coalesced[0].id]
    assert [r.id for r in await store.queue.take_over_expired(UP, T0 + 41, "w2", T0 + 80)
            ] == [b.id]
    await store.audit.audit("admin", "export_csv", None, "status=failed", T0 + 18)
    assert c.id  # never moved: its first state only


async def test_an_empty_chain_has_the_genesis_head_and_verifies(store: Backend) -> None:
    head = await store.chain.chain_head()
    assert (head.seq, head.head) == (0, GENESIS)
    result = await verify_chain(store.chain, T0)
    assert (result.ok, result.checked, result.head_seq) == (True, 0, 0)


async def test_every_request_attempt_state_and_audit_entry_joins_the_chain(
        store: Backend) -> None:
    await history(store)
    found = await entries(store)
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    kinds = [e.kind for e in found]
    assert kinds.count(Kind.REQUEST) == 7
    assert kinds.count(Kind.ATTEMPT) == 2
    assert kinds.count(Kind.AUDIT) == 2  # the operator's cancel and the plain entry
    states = [json.loads(e.record or b"") for e in found if e.kind is Kind.STATE]
    moves = [(s["from"], s["to"]) for s in states]
    # A request's first state is no entry of its own: the "from" of its first move.
    assert all(before is not None for before, _ in moves)
    assert ("pending", "in_flight") in moves and ("in_flight", "succeeded") in moves
    assert ("failed", "cancelled") in moves and ("pending", "held") in moves
    assert ("held", "pending") in moves and ("pending", "cancelled") in moves
    assert ("in_flight", "in_flight") in moves  # the take-over
    # Each head follows from the one before it and its leaf.
    previous = GENESIS
    for e in found:
        assert e.head == chain.linked(previous, e.leaf)
        previous = e.head
    assert (await store.chain.chain_head()).head == previous
    result = await verify_chain(store.chain, T0 + 100)
    assert (result.ok, result.checked, result.broken) == (True, len(found), None)


async def test_a_request_whose_leaf_differs_is_named(store: Backend) -> None:
    a, _ = await put(store, req(1), req(2))
    first = (await entries(store))[0]
    assert (first.kind, first.ref) == (Kind.REQUEST, a.id)
    leaves = await store.chain.current_leaves(await entries(store))
    assert leaves[0] == first.leaf
    # What verification sees when the record no longer matches: fed a different leaf.
    walk = chain.Walk(chain.ChainHead(0, GENESIS))
    found = await entries(store)
    broken = walk.feed(found, [b"\x00" * 32, *leaves[1:]])
    assert broken is not None and (broken.seq, broken.kind, broken.ref) == (1, "request", a.id)
    assert "changed" in broken.describe()


async def test_a_checkpoint_records_the_head_and_verification_can_start_there(
        store: Backend) -> None:
    await put(store, req(1), req(2))
    taken = await store.chain.checkpoint(T0 + 5, "after two")
    head = await store.chain.chain_head()
    assert (taken.seq, taken.head, taken.note) == (head.seq, head.head, "after two")
    await put(store, req(3))
    assert await store.chain.checkpoints(head=taken.head) == [taken]
    assert (await store.chain.checkpoints())[0] == taken
    result = await verify_chain(store.chain, T0 + 6, from_head=taken.head)
    assert (result.ok, result.from_seq, result.checked) == (True, taken.seq, 1)
    with pytest.raises(UnknownCheckpoint):
        await verify_chain(store.chain, T0 + 6, from_head=b"\x01" * 32)


async def test_a_purge_leaves_tombstones_that_keep_their_place_and_verify(
        store: Backend) -> None:
    """Bodies dropped, then whole rows: each purge marks the request's entry and its
    attempts' in the same move, their leaves and heads unchanged, and the chain verifies
    after each (the dropped body is no longer recomputed)."""
    old = await in_state(store, 1, Status.SUCCEEDED)
    kept = await in_state(store, 2, Status.FAILED, at=CUTOFF + 1)  # settled too late
    before = await entries(store)
    assert await purge_all(store, PurgeKind.BODIES) == 1
    after = await entries(store)
    assert [(e.seq, e.leaf, e.head) for e in after] == [(e.seq, e.leaf, e.head)
                                                      for e in before]
    assert {(e.kind, e.ref) for e in after if e.purged_at == NOW} == {
        (Kind.REQUEST, old.id), (Kind.ATTEMPT, f"{old.id}/1")}
    assert (await verify_chain(store.chain, NOW + 1)).ok
    # What the admin UI asks to tell a purged request from one that never was.
    assert await store.retention.purged([old.id, kept.id, "nope"]) == {old.id: NOW}

    assert await purge_all(store, PurgeKind.ROWS) == 1
    assert await store.log.get(old.id) is None
    result = await verify_chain(store.chain, NOW + 2)
    assert (result.ok, result.checked) == (True, len(after))
    assert await store.log.get(kept.id) is not None


async def test_a_row_purge_alone_leaves_tombstones_too(store: Backend) -> None:
    old = await in_state(store, 1, Status.DEAD)
    assert await purge_all(store, PurgeKind.ROWS) == 1
    marked = {(e.kind, e.ref) for e in await entries(store) if e.purged_at is not None}
    assert marked == {(Kind.REQUEST, old.id), (Kind.ATTEMPT, f"{old.id}/1")}
    assert (await verify_chain(store.chain, NOW + 1)).ok


async def test_a_tombstone_over_a_record_still_stored_is_reported(store: Backend) -> None:
    """Marking an entry purged without the purge would hide a change to its record."""
    a, _ = await put(store, req(1), req(2))
    assert await store.chain.mark_purged(Kind.REQUEST, [a.id], T0 + 9) == 1
    assert await store.chain.mark_purged(Kind.REQUEST, [a.id], T0 + 10) == 0  # once
    purged = [e for e in await entries(store) if e.purged_at is not None]
    assert [(e.kind, e.ref, e.purged_at) for e in purged] == [(Kind.REQUEST, a.id, T0 + 9)]
    result = await verify_chain(store.chain, T0 + 11)
    assert result.broken is not None and (result.broken.kind, result.broken.ref) == (
        "request", a.id)
    assert "marked purged, but its record is still stored" in result.broken.problem


async def test_a_tombstone_over_an_audit_entry_is_reported(store: Backend) -> None:
    await store.audit.audit("admin", "export_csv", None, "status=failed", T0 + 1)
    [entry] = await entries(store)
    assert await store.chain.mark_purged(Kind.AUDIT, [entry.ref], T0 + 2) == 1
    result = await verify_chain(store.chain, T0 + 3)
    assert result.broken is not None and result.broken.kind == "audit"
    assert "never purged" in result.broken.problem


async def test_each_verification_is_recorded_and_the_last_one_is_shown(
        store: Backend) -> None:
    assert await store.chain.last_verification() is None
    await put(store, req(1))
    first = await verify_chain(store.chain, T0 + 1)
    assert await store.chain.last_verification() == first
    broken = chain.Verification(at=T0 + 2, ok=False, head_seq=1, checked=0,
                                broken=chain.Break(1, "request", "X", "record changed"))
    await store.chain.record_verification(broken)
    assert await store.chain.last_verification() == broken


async def test_the_same_moves_make_the_same_chain_on_every_backend(tmp_path: Path) -> None:
    heads = {}
    same = requests()
    for kind in sorted(BACKENDS):
        backend = BACKENDS[kind](tmp_path / kind)
        await backend.open()
        try:
            await history(backend, same)
            heads[kind] = [(e.kind, e.ref, e.leaf, e.head) for e in await entries(backend)]
        finally:
            await backend.close()
    first, *others = heads.values()
    assert all(other == first for other in others)


async def test_a_record_purged_while_the_walk_reads_it_is_no_break() -> None:
    """A purge beside a verification: the entries were read unmarked, the record is gone
    by the time it is read (and its entry marked). The walk looks again, and passes."""
    state = MemoryState()
    backend = memory_backend(state)
    a, _ = await put(backend, req(1), req(2))

    class PurgedMeanwhile(MemoryChain):
        async def current_leaves(self, entries: Sequence[ChainEntry]) -> list[bytes | None]:
            if a.id in state.rows:
                del state.rows[a.id]
                await self.mark_purged(Kind.REQUEST, [a.id], T0 + 5)
            return await super().current_leaves(entries)

    result = await verify_chain(PurgedMeanwhile(state), T0 + 6)
    assert result.ok and result.checked == 2
