"""Callback outbox verbs: one contract for every store backend (see conftest BACKENDS).

Rows are created by ``complete_attempt`` / ``transition`` with ``callback=``, in the same
transaction as the final state they report.
"""

from __future__ import annotations

import pytest

from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.errors import Conflict, StoreUnavailable
from proxy.store.protocols import Outbox
from proxy.store.records import CallbackStatus, NewCallback
from tests.store.test_contract import T0, UP, attempt, put, req

URL = "http://127.0.0.1:9/hook"
LEASE_S = 30.0
LATER = T0 + 1_000_000  # every callback not finished is due by then


def outbox(store: Backend) -> Outbox:
    return store.outbox


async def cancelled_with_callback(store: Backend, i: float, payload: bytes = b'{"x":1}',
                                  at: float = T0 + 100) -> str:
    """A pending request cancelled by an operator, queueing a callback (id returned)."""
    [r] = await put(store, req(i))
    await store.operator.transition(r.id, Status.PENDING, Transition(Status.CANCELLED, "cancelled"),
                                    at, callback=NewCallback(URL, payload))
    return r.id


async def test_transition_queues_a_pending_callback_due_at_once(store: Backend) -> None:
    request_id = await cancelled_with_callback(store, 1, b'{"status":"cancelled"}')
    assert await outbox(store).next_callback_at() == T0 + 100
    assert await outbox(store).claim_callbacks(T0 + 99, 10, T0 + 99 + LEASE_S) == []
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 100 + LEASE_S)
    assert (cb.request_id, cb.upstream, cb.url, cb.payload, cb.status, cb.attempts,
            cb.next_attempt_at, cb.lease_expires_at, cb.last_error, cb.created_at,
            cb.updated_at) == (request_id, UP, URL, b'{"status":"cancelled"}',
                               CallbackStatus.SENDING, 1, T0 + 100, T0 + 100 + LEASE_S, None,
                               T0 + 100, T0 + 100)


async def test_complete_attempt_queues_it_with_the_final_state(store: Backend) -> None:
    [r] = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 10, "w1", T0 + 40)
    await store.queue.complete_attempt(r.id, "w1", attempt(1, T0 + 10, Verdict.SUCCESS),
                                       Transition(Status.SUCCEEDED, "ok"), T0 + 11,
                                       callback=NewCallback(URL, b"{}"))
    assert await outbox(store).next_callback_at() == T0 + 11
    [cb] = await outbox(store).claim_callbacks(T0 + 11, 10, T0 + 11 + LEASE_S)
    assert (cb.request_id, cb.next_attempt_at, cb.attempts) == (r.id, T0 + 11, 1)


async def test_no_callback_when_the_transition_is_refused(store: Backend) -> None:
    [r] = await put(store, req(1))
    with pytest.raises(Conflict):
        await store.queue.complete_attempt(r.id, "nobody", None, Transition(Status.DEAD, "x"),
                                           T0, callback=NewCallback(URL, b"{}"))
    with pytest.raises(Conflict):
        await store.operator.transition(r.id, Status.FAILED, Transition(Status.CANCELLED, "x"), T0,
                                        callback=NewCallback(URL, b"{}"))
    assert await outbox(store).next_callback_at() is None
    assert await outbox(store).claim_callbacks(LATER, 10, LATER + LEASE_S) == []


async def test_claim_leases_due_callbacks_oldest_first_and_counts_the_attempt(
        store: Backend) -> None:
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
    assert await outbox(store).next_callback_at() == T0 + 300 + LEASE_S
    # The future one was left pending: its first claim is its first attempt.
    [stored] = [cb for cb in await outbox(store).claim_callbacks(T0 + 900, 10, T0 + 930)
                if cb.request_id == future]
    assert stored.attempts == 1


async def test_claim_respects_the_limit(store: Backend) -> None:
    for i in range(3):
        await cancelled_with_callback(store, i, at=T0 + 100 + i)
    first = await outbox(store).claim_callbacks(T0 + 200, 2, T0 + 230)
    second = await outbox(store).claim_callbacks(T0 + 200, 2, T0 + 230)
    assert (len(first), len(second)) == (2, 1)


async def test_expired_lease_is_claimed_again(store: Backend) -> None:
    request_id = await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    assert await outbox(store).claim_callbacks(T0 + 130, 10, T0 + 160) == []
    [again] = await outbox(store).claim_callbacks(T0 + 131, 10, T0 + 161)
    assert (again.id, again.request_id, again.attempts) == (cb.id, request_id, 2)


async def test_delivered_is_final(store: Backend) -> None:
    await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    await outbox(store).finish_callback(cb.id, True, None, None, T0 + 101)
    assert await outbox(store).claim_callbacks(T0 + 10_000, 10, T0 + 10_030) == []
    assert await outbox(store).next_callback_at() is None
    with pytest.raises(Conflict):
        await outbox(store).finish_callback(cb.id, True, None, None, T0 + 102)


async def test_failure_reschedules_with_the_error(store: Backend) -> None:
    request_id = await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    await outbox(store).finish_callback(cb.id, False, "HTTP 503", T0 + 110, T0 + 101)
    assert await outbox(store).next_callback_at() == T0 + 110
    assert await outbox(store).claim_callbacks(T0 + 109, 10, T0 + 139) == []
    [retry] = await outbox(store).claim_callbacks(T0 + 110, 10, T0 + 140)
    assert (retry.id, retry.request_id, retry.next_attempt_at, retry.last_error,
            retry.attempts) == (cb.id, request_id, T0 + 110, "HTTP 503", 2)


async def test_failure_without_a_next_time_is_dead(store: Backend) -> None:
    await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    await outbox(store).finish_callback(cb.id, False, "connection refused", None, T0 + 101)
    assert await outbox(store).claim_callbacks(T0 + 10_000, 10, T0 + 10_030) == []
    assert await outbox(store).next_callback_at() is None


async def test_finishing_an_unclaimed_or_unknown_callback_conflicts(store: Backend) -> None:
    await cancelled_with_callback(store, 1)
    [cb] = await outbox(store).claim_callbacks(T0 + 100, 10, T0 + 130)
    await outbox(store).finish_callback(cb.id, False, "HTTP 503", T0 + 110, T0 + 101)
    with pytest.raises(Conflict):  # pending again, not claimed
        await outbox(store).finish_callback(cb.id, True, None, None, T0 + 102)
    with pytest.raises(Conflict):
        await outbox(store).finish_callback(987_654, False, "x", None, T0 + 101)


async def test_each_final_state_queues_its_own_callback(store: Backend) -> None:
    [r] = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 10, "w1", T0 + 40)
    await store.queue.complete_attempt(r.id, "w1", attempt(1, T0 + 10, Verdict.PERMANENT),
                                       Transition(Status.FAILED, "rejected"), T0 + 11,
                                       callback=NewCallback(URL, b'{"n":1}'))
    # An operator retry and a second final state queue a second callback.
    await store.operator.transition(
        r.id, Status.FAILED, Transition(Status.PENDING, "retry", next_attempt_at=T0 + 20), T0 + 20)
    await store.operator.transition(r.id, Status.PENDING, Transition(Status.CANCELLED, "cancelled"),
                                    T0 + 21, callback=NewCallback(URL + "2", b'{"n":2}'))
    listed = await outbox(store).claim_callbacks(T0 + 21, 10, T0 + 21 + LEASE_S)
    assert [(cb.request_id, cb.url, cb.payload) for cb in listed] == [
        (r.id, URL, b'{"n":1}'), (r.id, URL + "2", b'{"n":2}')]
    assert listed[0].id < listed[1].id


async def test_closed_store_refuses(store: Backend) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await outbox(store).claim_callbacks(T0, 1, T0 + 1)
    with pytest.raises(StoreUnavailable):
        await outbox(store).next_callback_at()
    with pytest.raises(StoreUnavailable):
        await outbox(store).finish_callback(1, True, None, None, T0)
