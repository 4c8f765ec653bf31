"""Store contract for ordering keys: in-order claims, held dependants and their release."""

from __future__ import annotations

from proxy.lifecycle import HELD_BEHIND, RELEASED, Status, Transition, Verdict
from proxy.store.backend import Backend
from tests.store.test_contract import T0, UP, attempt, ids, put, req
from tests.store_support import enqueue

OWNER = "lane-1"
KEY = f"{UP}:kodebooking=KB1"


async def claim(store: Backend, now: float = T0 + 100, limit: int = 10) -> list[str]:
    """What a lane of an ordered upstream does: refresh the holds, then claim."""
    await store.queue.refresh_holds(UP, now)
    return ids(await store.queue.claim_due(UP, now, limit, OWNER, now + 60))


async def finish(store: Backend, request_id: str, status: Status, number: int = 1) -> None:
    verdict = Verdict.SUCCESS if status is Status.SUCCEEDED else Verdict.PERMANENT
    await store.queue.complete_attempt(request_id, OWNER, attempt(number, T0 + 100, verdict),
                                       Transition(status, f"ended {status.value}"), T0 + 100)


async def test_requests_with_one_key_are_claimed_one_at_a_time_in_arrival_order(
        store: Backend) -> None:
    tasks = await put(store, *(req(i, ordering_key=KEY) for i in (1, 2, 3)))
    other = await put(store, req(4, ordering_key=f"{UP}:kodebooking=KB2"), req(5))
    assert await claim(store) == [tasks[0].id, other[0].id, other[1].id]
    assert await claim(store) == []  # task 2 waits while task 1 is in flight
    await finish(store, tasks[0].id, Status.SUCCEEDED)
    assert await claim(store) == [tasks[1].id]
    await finish(store, tasks[1].id, Status.SUCCEEDED)
    assert await claim(store) == [tasks[2].id]


async def test_an_earlier_request_waiting_for_its_retry_blocks_later_ones(store: Backend) -> None:
    first, _second = await put(store, req(1, ordering_key=KEY), req(2, ordering_key=KEY))
    assert await claim(store) == [first.id]
    await store.queue.complete_attempt(first.id, OWNER, attempt(1, T0 + 100), Transition(
        Status.PENDING, "503", next_attempt_at=T0 + 500), T0 + 100)
    assert await claim(store, now=T0 + 200) == []
    assert await store.queue.next_due_at(UP) == T0 + 500  # not the blocked request's due time


async def test_later_requests_are_held_behind_a_failed_one_with_the_reason(
        store: Backend) -> None:
    first, second, third = await put(store, *(req(i, ordering_key=KEY) for i in (1, 2, 3)))
    unrelated = (await put(store, req(4, ordering_key=f"{UP}:kodebooking=KB2")))[0]
    assert await claim(store) == [first.id, unrelated.id]
    await finish(store, first.id, Status.FAILED)
    newly_held = await store.queue.refresh_holds(UP, T0 + 100)
    assert ids(newly_held) == [second.id, third.id]
    assert all(r.status is Status.HELD for r in newly_held)
    assert await store.queue.refresh_holds(UP, T0 + 101) == []  # reported once
    assert await claim(store) == []
    for later in (second, third):
        row = await store.log.get(later.id)
        assert row is not None and row.status is Status.HELD
        assert row.held_by == first.id
        assert row.reason == f"{HELD_BEHIND}failed ({first.id})"


async def test_retrying_the_parent_releases_its_dependants_behind_it(store: Backend) -> None:
    first, second = await put(store, req(1, ordering_key=KEY), req(2, ordering_key=KEY))
    await claim(store)
    await finish(store, first.id, Status.DEAD)
    await claim(store)
    await store.operator.transition(first.id, Status.DEAD, Transition(
        Status.PENDING, "retry", next_attempt_at=T0 + 150, retried_at=T0 + 150), T0 + 150)
    assert await claim(store, now=T0 + 200) == [first.id]  # the parent goes first
    row = await store.log.get(second.id)
    assert row is not None and row.status is Status.PENDING and row.held_by is None
    assert row.reason == RELEASED
    await finish(store, first.id, Status.SUCCEEDED, number=2)
    assert await claim(store, now=T0 + 200) == [second.id]


async def test_cancelling_the_parent_lets_the_dependants_go(store: Backend) -> None:
    first, second = await put(store, req(1, ordering_key=KEY), req(2, ordering_key=KEY))
    await claim(store)
    await finish(store, first.id, Status.FAILED)
    await claim(store)
    await store.operator.transition(first.id, Status.FAILED, Transition(Status.CANCELLED, "x"),
                                    T0 + 150)
    assert await claim(store, now=T0 + 200) == [second.id]


async def test_a_request_arriving_after_its_key_failed_is_held_too(store: Backend) -> None:
    first = (await put(store, req(1, ordering_key=KEY)))[0]
    await claim(store)
    await finish(store, first.id, Status.FAILED)
    late = (await put(store, req(50, ordering_key=KEY)))[0]
    assert await claim(store) == []
    row = await store.log.get(late.id)
    assert row is not None and row.status is Status.HELD and row.held_by == first.id


async def test_requests_without_a_key_are_never_held(store: Backend) -> None:
    first, second = await put(store, req(1), req(2))
    assert await claim(store) == [first.id, second.id]


async def test_claims_alone_keep_order_without_holding_anything(store: Backend) -> None:
    first, second = await put(store, req(1, ordering_key=KEY), req(2, ordering_key=KEY))
    got = ids(await store.queue.claim_due(UP, T0 + 100, 10, OWNER, T0 + 160))
    assert got == [first.id]
    await finish(store, first.id, Status.FAILED)
    assert ids(await store.queue.claim_due(UP, T0 + 100, 10, OWNER, T0 + 160)) == []
    row = await store.log.get(second.id)
    assert row is not None and row.status is Status.PENDING


async def test_bpjs_fields_round_trip(store: Backend) -> None:
    r = req(1, endpoint="antrean.updatewaktu", ordering_key=KEY, expires_at=T0 + 3600.5)
    await enqueue(store.intake, r)
    row = await store.log.get(r.id)
    assert row is not None
    assert (row.endpoint, row.ordering_key, row.expires_at, row.held_by) == (
        "antrean.updatewaktu", KEY, T0 + 3600.5, None)
