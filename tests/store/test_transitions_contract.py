"""Store contract: ``lifecycle.ALLOWED`` is enforced by every backend. A move it lacks raises
``IllegalTransition`` and writes nothing (no state, no reason, no callback)."""

from __future__ import annotations

import pytest

from proxy.lifecycle import ALLOWED, IllegalTransition, Status, Transition
from proxy.store.backend import Backend
from proxy.store.records import NewCallback
from tests.store.test_contract import T0, UP, attempt, put, req
from tests.store_support import hand_back

HOOK = NewCallback("http://127.0.0.1:9/hook", b"{}")


async def _in(store: Backend, status: Status, i: int) -> str:
    """A request of its own, moved to ``status`` the way the relay and operators do."""
    (r,) = await put(store, req(i, received_at=T0 + i))
    if status is Status.PENDING:
        return r.id
    (claimed,) = await store.queue.claim_due(UP, T0 + i, 1, "w", T0 + i + 60)
    assert claimed.id == r.id
    if status is Status.IN_FLIGHT:
        return r.id
    if status is Status.CANCELLED:
        await hand_back(store, r.id, "w", T0 + i)
        await store.operator.transition(r.id, Status.PENDING, Transition(Status.CANCELLED, "x"),
                                        T0 + i)
        return r.id
    await store.queue.complete_attempt(r.id, "w", attempt(1, T0 + i), Transition(status, "x"),
                                       T0 + i)
    return r.id


@pytest.mark.parametrize("current", list(Status))
async def test_a_transition_allowed_does_not_contain_raises_and_writes_nothing(
        store: Backend, current: Status) -> None:
    illegal = [s for s in Status if s not in ALLOWED[current]]
    assert illegal  # every state has a move it may not make (at least to itself)
    rid = await _in(store, current, 1)
    before = await store.log.get(rid)
    for wanted in illegal:
        with pytest.raises(IllegalTransition, match=f"{current.value} -> {wanted.value}"):
            await store.operator.transition(rid, current, Transition(wanted, "illegal",
                                                                     next_attempt_at=T0 + 9),
                                            T0 + 9, callback=HOOK)
    assert await store.log.get(rid) == before
    assert await store.outbox.next_callback_at() is None


async def test_completing_an_attempt_must_end_in_flight(store: Backend) -> None:
    """complete_attempt ends the lease: leaving the request in_flight (without a lease)
    is not a move ALLOWED has, so it is refused before the attempt is recorded."""
    rid = await _in(store, Status.IN_FLIGHT, 1)
    before = await store.log.get(rid)
    with pytest.raises(IllegalTransition, match="in_flight -> in_flight"):
        await store.queue.complete_attempt(rid, "w", attempt(1, T0 + 2),
                                           Transition(Status.IN_FLIGHT, "still sending"), T0 + 2,
                                           callback=HOOK)
    after = await store.log.get(rid)
    assert after == before and after is not None and after.lease_owner == "w"
    assert await store.log.attempts(rid) == []
    assert await store.outbox.next_callback_at() is None


async def test_every_allowed_operator_move_is_made(store: Backend) -> None:
    """The other side: what ALLOWED lets ``transition`` do, every backend does."""
    moves = [(c, w) for c in (Status.PENDING, Status.FAILED, Status.DEAD, Status.HELD)
             for w in sorted(ALLOWED[c]) if w is not Status.IN_FLIGHT]
    for i, (current, wanted) in enumerate(moves, start=1):
        rid = await _in(store, current, i)
        await store.operator.transition(rid, current, Transition(wanted, "ok"), T0 + 100)
        row = await store.log.get(rid)
        assert row is not None and (row.status, row.reason) == (wanted, "ok")
