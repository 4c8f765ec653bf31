"""Store contract: ``renew_leases`` extends only the leases its owner still holds, and a
renewed lease is not taken over (renewal is its own verb, not a take-over side effect)."""

from __future__ import annotations

from proxy.lifecycle import Status, Transition
from proxy.store.backend import Backend
from tests.store.test_contract import T0, UP, put, req


async def test_renewed_leases_outlive_their_first_term_and_others_do_not(
        store: Backend) -> None:
    a, b, c, d = await put(store, req(1), req(2), req(3), req(4))
    mine = await store.queue.claim_due(UP, T0 + 10, 2, "w1", T0 + 40)
    assert [r.id for r in mine] == [a.id, b.id]
    assert [r.id for r in await store.queue.claim_due(UP, T0 + 10, 1, "w2", T0 + 40)] == [c.id]

    renewed = await store.queue.renew_leases("w1", [a.id, c.id, d.id, "no-such-id"], T0 + 100)

    assert renewed == {a.id}, "only w1's own in-flight lease is renewed"
    row = await store.log.get(a.id)
    assert row is not None and row.lease_owner == "w1" and row.lease_expires_at == T0 + 100
    for other in (c, d):
        kept = await store.log.get(other.id)
        assert kept is not None and kept.lease_expires_at != T0 + 100
    taken = await store.queue.take_over_expired(UP, T0 + 50, "w3", T0 + 80)
    assert sorted(r.id for r in taken) == sorted([b.id, c.id])
    row = await store.log.get(a.id)
    assert row is not None and row.lease_owner == "w1" and row.status is Status.IN_FLIGHT


async def test_a_lease_no_longer_held_is_not_renewed(store: Backend) -> None:
    (a,) = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)
    await store.queue.complete_attempt(a.id, "w1", None, Transition(Status.SUCCEEDED, "ok"),
                                       T0 + 20)
    assert await store.queue.renew_leases("w1", [a.id], T0 + 100) == set()
    assert await store.queue.renew_leases("w1", [], T0 + 100) == set()
    row = await store.log.get(a.id)
    assert row is not None and row.status is Status.SUCCEEDED and row.lease_expires_at is None
