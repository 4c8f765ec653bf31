"""Callback outbox verbs: one contract for every store backend (see conftest BACKENDS).

Rows are created by ``complete_attempt`` / ``transition`` with ``callback=``, in the same
transaction as the final state they report.
"""

from __future__ import annotations

import pytest

from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.base import Conflict, NewCallback, Store, StoreUnavailable
from proxy.store.callbacks_base import CallbackStatus, CallbackStore, callback_store
from tests.store.test_contract import T0, UP, attempt, put, req

URL = "http://127.0.0.1:9/hook"
LEASE_S = 30.0


def outbox(store: Store) -> CallbackStore:
    return callback_store(store)


async def cancelled_with_callback(store: Store, i: float, payload: bytes = b'{"x":1}',
                                  at: float = T0 + 100) -> str:
    """A pending request cancelled by an operator, queueing a callback (id returned)."""
    [r] = await put(store, req(i))
    await store.transition(r.id, Status.PENDING, Transition(Status.CANCELLED, "cancelled"),
                           at, callback=NewCallback(URL, payload))
    return r.id


async def test_transition_queues_a_pending_callback_due_at_once(store: Store) -> None:
    request_id = await cancelled_with_callback(store, 1, b'{"status":"cancelled"}')
    [cb] = await outbox(store).callbacks_for(request_id)
    assert (cb.request_id, cb.upstream, cb.url, cb.payload, cb.status, cb.attempts,
            cb.next_attempt_at, cb.lease_expires_at, cb.last_error, cb.created_at,
            cb.updated_at) == (request_id, UP, URL, b'{"status":"cancelled"}',
                               CallbackStatus.PENDING, 0, T0 + 100, None, None, T0 + 100,
                               T0 + 100)
    assert await outbox(store).next_callback_at() == T0 + 100


async def test_complete_attempt_queues_it_with_the_final_state(store: Store) -> None:
    [r] = await put(store, req(1))
    await store.claim_due(UP, T0 + 10, 10, "w1", T0 + 40)
    await store.complete_attempt(r.id, "w1", attempt(1, T0 + 10, Verdict.SUCCESS),
                                 Transition(Status.SUCCEEDED, "ok"), T0 + 11,
                                 callback=NewCallback(URL, b"{}"))
    [cb] = await outbox(store).callbacks_for(r.id)
    assert (cb.status, cb.next_attempt_at) == (CallbackStatus.PENDING, T0 + 11)


async def test_no_callback_when_the_transition_is_refused(store: Store) -> None:
    [r] = await put(store, req(1))
    with pytest.raises(Conflict):
        await store.complete_attempt(r.id, "nobody", None, Transition(Status.DEAD, "x"),
                                     T0, callback=NewCallback(URL, b"{}"))
    with pytest.raises(Conflict):
        await store.transition(r.id, Status.FAILED, Transition(Status.CANCELLED, "x"), T0,
                               callback=NewCallback(URL, b"{}"))
    assert await outbox(store).callbacks_for(r.id) == []
    assert await outbox(store).next_callback_at() is None


async def test_claim_leases_due_callbacks_oldest_first_and_counts_the_attempt(
        store: Store) -> None:
    late = await cancelled_with_callback(store, 1, at=T0 + 200)
    early = await cancelled_with_callback(store, 2, at=T0 + 100)
    future = await cancelled_with_callback(store, 3, at=T0 + 900)
    claimed = await outbox(store).claim_callbacks(T0 + 300, 10, T0 + 300 + LEASE_S)
    assert [cb.request_id for cb in claimed] == [early, late]
    assert all(cb.status is CallbackStatus.SENDING and cb.attempts == 1
               and cb.lease_expires_at == T0 + 300 + LEASE_S and cb.updated_at == T0 + 300
               for cb in claimed)
    # Leased ones are not claimed twice while their lease runs.
    assert await outbox(store).claim_callbacks(T0 + 301, 10, T0 + 400) == []
    [stored] = await outbox(store).callbacks_for(future)
    assert stored.status is CallbackStatus.PENDING
    assert await outbox(store).next_callback_at() == T0 + 300 + LEASE_S


async def test_claim_respects_the_limit(store: Store) -> None:
    for i in range(3):
        await cancelled_with_callback(store, i, at=T0 + 100 + i)
    first = await outbox(store).claim_callbacks(T0 + 200, 2, T0 + 230)
    second = await outbox(store).claim_callbacks(T0 + 200, 2, T0 + 230)
    assert (len(first), len(second)) == (2, 1)


async def test_expired_lease_is_claimed_again(store: Store) -> None:
    request_id = await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    assert await outbox(store).claim_callbacks(T0 + 130, 10, T0 + 160) == []
    [again] = await outbox(store).claim_callbacks(T0 + 131, 10, T0 + 161)
    assert (again.id, again.request_id, again.attempts) == (cb.id, request_id, 2)


async def test_delivered_is_final(store: Store) -> None:
    request_id = await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    await outbox(store).finish_callback(cb.id, True, None, None, T0 + 101)
    [done] = await outbox(store).callbacks_for(request_id)
    assert (done.status, done.lease_expires_at, done.last_error, done.updated_at,
            done.attempts) == (CallbackStatus.DELIVERED, None, None, T0 + 101, 1)
    assert await outbox(store).claim_callbacks(T0 + 10_000, 10, T0 + 10_030) == []
    assert await outbox(store).next_callback_at() is None
    with pytest.raises(Conflict):
        await outbox(store).finish_callback(cb.id, True, None, None, T0 + 102)


async def test_failure_reschedules_with_the_error(store: Store) -> None:
    request_id = await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    await outbox(store).finish_callback(cb.id, False, "HTTP 503", T0 + 110, T0 + 101)
    [again] = await outbox(store).callbacks_for(request_id)
    assert (again.status, again.next_attempt_at, again.last_error, again.lease_expires_at,
            again.attempts) == (CallbackStatus.PENDING, T0 + 110, "HTTP 503", None, 1)
    assert await outbox(store).next_callback_at() == T0 + 110
    assert await outbox(store).claim_callbacks(T0 + 109, 10, T0 + 139) == []
    [retry] = await outbox(store).claim_callbacks(T0 + 110, 10, T0 + 140)
    assert retry.attempts == 2


async def test_failure_without_a_next_time_is_dead(store: Store) -> None:
    request_id = await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    await outbox(store).finish_callback(cb.id, False, "connection refused", None, T0 + 101)
    [dead] = await outbox(store).callbacks_for(request_id)
    assert (dead.status, dead.last_error) == (CallbackStatus.DEAD, "connection refused")
    assert await outbox(store).claim_callbacks(T0 + 10_000, 10, T0 + 10_030) == []
    assert await outbox(store).next_callback_at() is None


async def test_finishing_an_unclaimed_or_unknown_callback_conflicts(store: Store) -> None:
    request_id = await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).callbacks_for(request_id)
    with pytest.raises(Conflict):
        await outbox(store).finish_callback(cb.id, True, None, None, T0 + 101)
    with pytest.raises(Conflict):
        await outbox(store).finish_callback(987_654, False, "x", None, T0 + 101)


async def test_callbacks_for_lists_in_queue_order(store: Store) -> None:
    [r] = await put(store, req(1))
    await store.claim_due(UP, T0 + 10, 10, "w1", T0 + 40)
    await store.complete_attempt(r.id, "w1", attempt(1, T0 + 10, Verdict.PERMANENT),
                                 Transition(Status.FAILED, "rejected"), T0 + 11,
                                 callback=NewCallback(URL, b'{"n":1}'))
    # An operator retry and a second final state queue a second callback.
    await store.transition(r.id, Status.FAILED, Transition(Status.PENDING, "retry",
                                                           next_attempt_at=T0 + 20), T0 + 20)
    await store.transition(r.id, Status.PENDING, Transition(Status.CANCELLED, "cancelled"),
                           T0 + 21, callback=NewCallback(URL + "2", b'{"n":2}'))
    listed = await outbox(store).callbacks_for(r.id)
    assert [(cb.url, cb.payload) for cb in listed] == [(URL, b'{"n":1}'),
                                                      (URL + "2", b'{"n":2}')]
    assert listed[0].id < listed[1].id
    assert await outbox(store).callbacks_for("no-such-request") == []


async def test_closed_store_refuses(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await outbox(store).claim_callbacks(T0, 1, T0 + 1)
    with pytest.raises(StoreUnavailable):
        await outbox(store).callbacks_for("x")
