"""Store contract for delivery modes: dedup keys, coalescing, leased intake, queue size."""

from __future__ import annotations

import pytest

from proxy.calls import SUPERSEDED, Status, Transition
from proxy.store.base import DuplicateKey, NewCallback, Store, StoredRequest
from proxy.store.callbacks_base import CallbackStatus, callback_store
from tests.store.test_contract import T0, UP, put, req


async def test_a_dedup_key_is_unique_and_finds_its_request(store: Store) -> None:
    first = (await put(store, req(1, dedup_key="antrean:add:KB1")))[0]
    with pytest.raises(DuplicateKey):
        await store.enqueue(req(2, dedup_key="antrean:add:KB1"))
    found = await store.find_by_dedup_key("antrean:add:KB1")
    assert found is not None and found.id == first.id and found.dedup_key == "antrean:add:KB1"
    assert await store.find_by_dedup_key("antrean:add:KB2") is None


async def test_a_cleared_dedup_key_can_be_used_again(store: Store) -> None:
    first = (await put(store, req(1, dedup_key="k")))[0]
    await store.clear_dedup_key(first.id)
    second = (await put(store, req(2, dedup_key="k")))[0]
    found = await store.find_by_dedup_key("k")
    assert found is not None and found.id == second.id


async def test_requests_without_dedup_keys_never_collide(store: Store) -> None:
    await put(store, req(1), req(2))
    assert len((await store.search(status=None, upstream=UP, limit=10, cursor=None)).items) == 2


async def test_supersede_cancels_older_pending_updates_and_names_the_newest(
        store: Store) -> None:
    rows = await put(store, *(req(i, coalesce_key="room-A") for i in (1, 2, 3)))
    other = (await put(store, req(4, coalesce_key="room-B")))[0]
    newest = await store.supersede("room-A", T0 + 50)
    assert newest == rows[2].id
    for old in rows[:2]:
        row = await store.get(old.id)
        assert row is not None and row.status is Status.CANCELLED
        assert row.reason == f"{SUPERSEDED}{rows[2].id}"
    kept = await store.get(rows[2].id)
    untouched = await store.get(other.id)
    assert kept is not None and kept.status is Status.PENDING
    assert untouched is not None and untouched.status is Status.PENDING
    assert await store.supersede("room-C", T0) is None


async def test_supersede_queues_the_callback_of_each_cancelled_update(store: Store) -> None:
    old, older_kept, newest = await put(store, req(1, coalesce_key="room-A"),
                                        req(2, coalesce_key="room-A"),
                                        req(3, coalesce_key="room-A"))
    seen: list[tuple[str, Status, str]] = []

    def build(cancelled: StoredRequest, transition: Transition) -> NewCallback | None:
        seen.append((cancelled.id, transition.status, transition.reason))
        # The upstream decides: here only the first update's SIMRS wants to hear of it.
        return NewCallback("http://127.0.0.1:9/hook", cancelled.id.encode()) \
            if cancelled.id == old.id else None

    assert await store.supersede("room-A", T0 + 50, callbacks=build) \
        == newest.id
    reason = f"{SUPERSEDED}{newest.id}"
    assert sorted(seen) == [(old.id, Status.CANCELLED, reason),
                            (older_kept.id, Status.CANCELLED, reason)]
    [cb] = await callback_store(store).callbacks_for(old.id)
    assert (cb.payload, cb.status, cb.next_attempt_at) == (
        old.id.encode(), CallbackStatus.PENDING, T0 + 50)
    assert await callback_store(store).callbacks_for(older_kept.id) == []
    assert await callback_store(store).callbacks_for(newest.id) == []


async def test_supersede_never_cancels_what_is_in_flight(store: Store) -> None:
    old, new = await put(store, req(1, coalesce_key="r"), req(2, coalesce_key="r"))
    claimed = await store.claim_due(UP, T0 + 10, 1, "w", T0 + 70)
    assert [r.id for r in claimed] == [old.id]
    assert await store.supersede("r", T0 + 20) == new.id
    row = await store.get(old.id)
    assert row is not None and row.status is Status.IN_FLIGHT


async def test_a_leased_request_is_stored_in_flight_for_its_owner(store: Store) -> None:
    r = req(1, lease_owner="live", lease_expires_at=T0 + 60)
    await store.enqueue(r)
    row = await store.get(r.id)
    assert row is not None and row.status is Status.IN_FLIGHT
    assert (row.lease_owner, row.lease_expires_at) == ("live", T0 + 60)
    assert await store.claim_due(UP, T0 + 10, 10, "other", T0 + 70) == []
    await store.complete_attempt(r.id, "live", None, Transition(Status.SUCCEEDED, "ok"),
                                 T0 + 2)
    done = await store.get(r.id)
    assert done is not None and done.status is Status.SUCCEEDED


async def test_count_queued_counts_what_still_waits_for_delivery(store: Store) -> None:
    _, _, c = await put(store, req(1), req(2), req(3))
    await put(store, req(4, upstream="vclaim"))
    await store.claim_due(UP, T0 + 10, 1, "w", T0 + 70)
    await store.transition(c.id, Status.PENDING, Transition(Status.CANCELLED, "x"), T0 + 5)
    assert await store.count_queued(UP) == 2
    assert await store.count_queued("vclaim") == 1
