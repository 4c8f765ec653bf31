"""Store contract for delivery modes: dedup keys, coalescing, leased intake, queue size."""

from __future__ import annotations

import asyncio

from proxy.lifecycle import SUPERSEDED, Status, Transition
from proxy.store.backend import Backend
from proxy.store.records import NewCallback, NewRequest, RequestFilter, StoredRequest
from tests.store.test_contract import T0, UP, put, req
from tests.store_support import enqueue

WINDOW = 600.0


async def _settle(store: Backend, request: NewRequest, now: float) -> None:
    """Deliver ``request`` successfully at ``now``."""
    claimed = await store.queue.claim_due(UP, now, 10, "w", now + 30)
    assert request.id in [r.id for r in claimed]
    await store.queue.complete_attempt(request.id, "w", None, Transition(Status.SUCCEEDED, "ok"),
                                       now)


async def test_a_resubmission_of_a_request_in_play_is_matched_and_not_stored(
        store: Backend) -> None:
    first = req(1, dedup_key="antrean:add:KB1")
    assert await store.intake.enqueue_or_match(first, WINDOW, T0 + 1) is None
    found = await store.intake.enqueue_or_match(req(2, dedup_key="antrean:add:KB1"), WINDOW, T0 + 2)
    assert found is not None and found.id == first.id and found.dedup_key == "antrean:add:KB1"
    assert await store.intake.enqueue_or_match(req(3, dedup_key="antrean:add:KB2"), WINDOW,
                                               T0 + 3) is None
    page = await store.log.find_requests(RequestFilter(upstream=UP), limit=10, cursor=None)
    assert sorted(r.dedup_key or "" for r in page.items) == ["antrean:add:KB1",
                                                            "antrean:add:KB2"]


async def test_a_resubmission_after_the_window_is_a_new_request_holding_the_key(
        store: Backend) -> None:
    first = req(1, dedup_key="k")
    assert await store.intake.enqueue_or_match(first, WINDOW, T0 + 1) is None
    await _settle(store, first, T0 + 5)
    inside = await store.intake.enqueue_or_match(req(6, dedup_key="k"), WINDOW, T0 + 5 + WINDOW)
    assert inside is not None and inside.id == first.id
    second = req(700, dedup_key="k")
    assert await store.intake.enqueue_or_match(second, WINDOW, T0 + 6 + WINDOW) is None
    again = await store.intake.enqueue_or_match(req(701, dedup_key="k"), WINDOW, T0 + 7 + WINDOW)
    assert again is not None and again.id == second.id
    old = await store.log.get(first.id)
    assert old is not None and old.dedup_key is None and old.status is Status.SUCCEEDED


async def test_racing_resubmissions_after_the_window_store_exactly_one_new_request(
        store: Backend) -> None:
    first = req(1, dedup_key="k")
    await store.intake.enqueue_or_match(first, WINDOW, T0 + 1)
    await _settle(store, first, T0 + 5)
    late = T0 + 10 + WINDOW
    racers = [req(800 + i, dedup_key="k") for i in range(8)]
    results = await asyncio.gather(
        *(store.intake.enqueue_or_match(r, WINDOW, late) for r in racers), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]
    stored = [r.id for r, found in zip(racers, results, strict=True) if found is None]
    assert len(stored) == 1
    assert {found.id for found in results if isinstance(found, StoredRequest)} == set(stored)
    page = await store.log.find_requests(RequestFilter(upstream=UP), limit=20, cursor=None)
    assert sorted(r.id for r in page.items) == sorted([first.id, *stored])


async def test_requests_without_dedup_keys_never_collide(store: Backend) -> None:
    await put(store, req(1), req(2))
    page = await store.log.find_requests(RequestFilter(upstream=UP), limit=10, cursor=None)
    assert len(page.items) == 2


async def test_live_coalesced_lists_pending_and_in_flight_updates_oldest_first(
        store: Backend) -> None:
    rows = await put(store, *(req(i, coalesce_key="room-A") for i in (1, 2, 3, 4)))
    await put(store, req(5, coalesce_key="room-B"))
    claimed = await store.queue.claim_due(UP, T0 + 10, 1, "w", T0 + 70)
    assert [r.id for r in claimed] == [rows[0].id]
    await store.queue.supersede([rows[1].id], rows[3].id, T0 + 11)
    live = await store.queue.live_coalesced("room-A")
    assert [(r.id, r.status) for r in live] == [
        (rows[0].id, Status.IN_FLIGHT), (rows[2].id, Status.PENDING),
        (rows[3].id, Status.PENDING)]
    assert await store.queue.live_coalesced("room-C") == []


async def test_supersede_cancels_the_older_pending_updates_naming_the_newest(
        store: Backend) -> None:
    rows = await put(store, *(req(i, coalesce_key="room-A") for i in (1, 2, 3)))
    other = (await put(store, req(4, coalesce_key="room-B")))[0]
    cancelled = await store.queue.supersede([rows[0].id, rows[1].id], rows[2].id, T0 + 50)
    assert cancelled == [rows[0].id, rows[1].id]
    for old in rows[:2]:
        row = await store.log.get(old.id)
        assert row is not None and row.status is Status.CANCELLED
        assert row.reason == f"{SUPERSEDED}{rows[2].id}" and row.updated_at == T0 + 50
    kept = await store.log.get(rows[2].id)
    untouched = await store.log.get(other.id)
    assert kept is not None and kept.status is Status.PENDING
    assert untouched is not None and untouched.status is Status.PENDING
    assert await store.queue.supersede([], rows[2].id, T0 + 60) == []


async def test_supersede_queues_the_callbacks_built_for_the_cancelled_updates(
        store: Backend) -> None:
    old, older_kept, newest = await put(store, req(1, coalesce_key="room-A"),
                                        req(2, coalesce_key="room-A"),
                                        req(3, coalesce_key="room-A"))
    # The upstream decides: here only the first update's SIMRS wants to hear of it.
    built = {old.id: NewCallback("http://127.0.0.1:9/hook", old.id.encode())}
    assert await store.queue.supersede([old.id, older_kept.id], newest.id, T0 + 50,
                                       built) == [old.id, older_kept.id]
    # One callback, the one built, due at once.
    assert await store.outbox.next_callback_at() == T0 + 50
    [cb] = await store.outbox.claim_callbacks(T0 + 1_000, 10, T0 + 1_030)
    assert (cb.request_id, cb.payload, cb.next_attempt_at) == (
        old.id, old.id.encode(), T0 + 50)


async def test_supersede_never_cancels_what_is_in_flight_or_settled(store: Backend) -> None:
    old, done, new = await put(store, req(1, coalesce_key="r"), req(2, coalesce_key="r"),
                               req(3, coalesce_key="r"))
    claimed = await store.queue.claim_due(UP, T0 + 10, 2, "w", T0 + 70)
    assert [r.id for r in claimed] == [old.id, done.id]
    await store.queue.complete_attempt(done.id, "w", None, Transition(Status.SUCCEEDED, "ok"),
                                       T0 + 15)
    built = {old.id: NewCallback("http://127.0.0.1:9/hook", b"{}")}
    assert await store.queue.supersede([old.id, done.id], new.id, T0 + 20, built) == []
    row = await store.log.get(old.id)
    assert row is not None and row.status is Status.IN_FLIGHT
    finished = await store.log.get(done.id)
    assert finished is not None and finished.status is Status.SUCCEEDED
    assert await store.outbox.next_callback_at() is None


async def test_a_leased_request_is_stored_in_flight_for_its_owner(store: Backend) -> None:
    r = req(1, lease_owner="live", lease_expires_at=T0 + 60)
    await enqueue(store.intake, r)
    row = await store.log.get(r.id)
    assert row is not None and row.status is Status.IN_FLIGHT
    assert (row.lease_owner, row.lease_expires_at) == ("live", T0 + 60)
    assert await store.queue.claim_due(UP, T0 + 10, 10, "other", T0 + 70) == []
    await store.queue.complete_attempt(r.id, "live", None, Transition(Status.SUCCEEDED, "ok"),
                                       T0 + 2)
    done = await store.log.get(r.id)
    assert done is not None and done.status is Status.SUCCEEDED


async def test_count_queued_counts_what_still_waits_for_delivery(store: Backend) -> None:
    _, _, c = await put(store, req(1), req(2), req(3))
    await put(store, req(4, upstream="vclaim"))
    await store.queue.claim_due(UP, T0 + 10, 1, "w", T0 + 70)
    await store.operator.transition(c.id, Status.PENDING, Transition(Status.CANCELLED, "x"), T0 + 5)
    assert await store.intake.count_queued(UP) == 2
    assert await store.intake.count_queued("vclaim") == 1
