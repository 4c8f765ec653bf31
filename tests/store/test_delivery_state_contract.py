"""Delivery state kept with each request (contract, every backend): the reconciliation
phase of an unanswered SEP insert, and the count of its own credential refusals that
keeps a request from being the half-open probe."""

from __future__ import annotations

from proxy.lifecycle import Status, Transition
from proxy.store.backend import Backend
from tests.store.test_contract import T0, UP, attempt, ids, put, req


async def _claim_one(store: Backend, at: float, *, probe: bool = False) -> list[str]:
    return ids(await store.queue.claim_due(UP, at, 1, "w", at + 30, probe=probe))


async def test_a_reconciliation_phase_survives_until_a_transition_ends_it(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 5, 1, "w", T0 + 35)
    await store.queue.complete_attempt(r.id, "w", attempt(1, T0 + 5), Transition(
        Status.PENDING, "no answer; reading history", next_attempt_at=T0 + 6,
        reconcile_reads=2), T0 + 6)
    stored = await store.log.get(r.id)
    assert stored is not None and (stored.reconcile_reads, stored.attempts) == (2, 1)
    (claimed,) = await store.queue.claim_due(UP, T0 + 6, 1, "w", T0 + 36)
    assert claimed.reconcile_reads == 2  # the claim knows to read, not send
    await store.queue.complete_attempt(r.id, "w", None, Transition(
        Status.HELD, "could not tell"), T0 + 7)
    await store.operator.transition(r.id, Status.HELD, Transition(
        Status.PENDING, "retry requested by operator", next_attempt_at=T0 + 8), T0 + 8)
    stored = await store.log.get(r.id)
    assert stored is not None and stored.reconcile_reads is None and stored.attempts == 1


async def test_a_probe_claim_takes_a_request_without_own_faults_first(store: Backend) -> None:
    refused, clean = await put(store, req(1), req(2, received_at=T0 + 8))
    await store.queue.claim_due(UP, T0 + 5, 1, "w", T0 + 35)
    await store.queue.complete_attempt(refused.id, "w", attempt(1, T0 + 5), Transition(
        Status.PENDING, "refused", next_attempt_at=T0 + 6, own_faults=1), T0 + 6)
    stored = await store.log.get(refused.id)
    assert stored is not None and stored.own_faults == 1
    # Due earlier than the clean one, yet a probe takes the clean one first ...
    assert await _claim_one(store, T0 + 10, probe=True) == [clean.id]
    # ... and the refused one when nothing else is due; a normal claim keeps due order.
    assert await _claim_one(store, T0 + 10, probe=True) == [refused.id]


async def test_a_normal_claim_ignores_own_faults(store: Backend) -> None:
    refused, clean = await put(store, req(1), req(2, received_at=T0 + 8))
    await store.queue.claim_due(UP, T0 + 5, 1, "w", T0 + 35)
    await store.queue.complete_attempt(refused.id, "w", attempt(1, T0 + 5), Transition(
        Status.PENDING, "refused", next_attempt_at=T0 + 6, own_faults=1), T0 + 6)
    assert await _claim_one(store, T0 + 10) == [refused.id]
    await store.queue.complete_attempt(refused.id, "w", attempt(2, T0 + 10), Transition(
        Status.PENDING, "HTTP 503", next_attempt_at=T0 + 11), T0 + 11)
    stored = await store.log.get(refused.id)
    assert stored is not None and stored.own_faults == 0  # any other outcome clears it
    assert await _claim_one(store, T0 + 10) == [clean.id]
