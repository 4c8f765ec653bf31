"""Store contract: the SendSlots role. The sends in flight are ``limit`` leased slots
that concurrent takers never hold more of, that come back after a dead owner's lease,
and that other owners' replays leave to a live send marked waiting for one."""

from __future__ import annotations

import asyncio

from proxy.store.backend import Backend
from tests.store.test_contract import T0, UP


async def test_send_slots_are_leased_up_to_the_limit_and_come_back_when_returned(
        store: Backend) -> None:
    c = store.send_slots
    assert await c.take_send_slots(UP, "a", 3, 4, T0, T0 + 10) == [0, 1, 2]
    assert await c.take_send_slots(UP, "b", 3, 4, T0, T0 + 10) == [3], "the limit is all"
    assert await c.take_send_slots(UP, "b", 1, 4, T0 + 1, T0 + 11) == []
    await c.return_send_slots(UP, "b", [0, 1])  # not b's: nothing comes back
    assert await c.take_send_slots(UP, "b", 1, 4, T0 + 1, T0 + 11) == []
    await c.return_send_slots(UP, "a", [1])
    assert await c.take_send_slots(UP, "b", 2, 4, T0 + 1, T0 + 11) == [1]
    assert await c.take_send_slots(UP, "b", 5, 2, T0 + 1, T0 + 11) == [], \
        "a lower limit takes only slots below it"
    assert await c.take_send_slots("other", "a", 9, 2, T0, T0 + 10) == [0, 1], \
        "one set of slots per upstream"


async def test_a_dead_owners_slots_come_back_after_their_lease_and_only_then(
        store: Backend) -> None:
    c = store.send_slots
    assert await c.take_send_slots(UP, "dead", 2, 2, T0, T0 + 10) == [0, 1]
    assert await c.take_send_slots(UP, "alive", 2, 2, T0 + 9.9, T0 + 20) == []
    assert await c.renew_send_slots(UP, "alive", [0, 1], T0 + 30) == [], "not alive's"
    assert await c.take_send_slots(UP, "alive", 2, 2, T0 + 10, T0 + 20) == [0, 1]
    assert await c.renew_send_slots(UP, "dead", [0, 1], T0 + 30) == [], \
        "a slot taken over is not taken back"
    await c.return_send_slots(UP, "dead", [0, 1])
    assert await c.take_send_slots(UP, "third", 1, 2, T0 + 15, T0 + 25) == [], \
        "nor freed by its old owner"
    assert await c.renew_send_slots(UP, "alive", [0], T0 + 40) == [0]
    assert await c.take_send_slots(UP, "third", 2, 2, T0 + 25, T0 + 35) == [1], \
        "the renewed slot is still held past its first lease"


async def test_concurrent_takes_never_hold_more_slots_than_the_limit(store: Backend) -> None:
    c = store.send_slots
    takes = await asyncio.gather(*(c.take_send_slots(UP, f"i{i}", 2, 5, T0, T0 + 10)
                                   for i in range(12)))
    held = [n for taken in takes for n in taken]
    assert sorted(held) == [0, 1, 2, 3, 4]


async def test_a_live_send_waiting_for_a_slot_keeps_other_owners_replays_off_them(
        store: Backend) -> None:
    c = store.send_slots
    assert await c.take_send_slots(UP, "a", 2, 2, T0, T0 + 10) == [0, 1]
    assert await c.take_live_send_slot(UP, "b", 2, T0, T0 + 10, T0 + 1) is None, \
        "none free: b is marked waiting"
    await c.return_send_slots(UP, "a", [0])
    assert await c.take_send_slots(UP, "a", 1, 2, T0 + 0.5, T0 + 10) == [], \
        "a replay leaves the freed slot to the waiting live send"
    assert await c.take_send_slots("other", "a", 1, 2, T0 + 0.5, T0 + 10) == [0], \
        "only that upstream's"
    assert await c.take_live_send_slot(UP, "c", 2, T0 + 0.5, T0 + 10, T0 + 1) == 0, \
        "a live send takes a free slot whoever waits"
    await c.return_send_slots(UP, "c", [0])
    assert await c.take_send_slots(UP, "b", 1, 2, T0 + 0.5, T0 + 10) == [0], \
        "its own mark holds back none of b's"
    await c.return_send_slots(UP, "b", [0])
    assert await c.take_send_slots(UP, "a", 1, 2, T0 + 1, T0 + 10) == [0], \
        "a mark not renewed runs out by itself (a killed instance's)"

    assert await c.take_live_send_slot(UP, "b", 2, T0 + 2, T0 + 10, T0 + 3) is None
    assert await c.take_live_send_slot(UP, "b", 2, T0 + 2, T0 + 10, T0 + 2.5) is None
    await c.return_send_slots(UP, "a", [1])
    assert await c.take_send_slots(UP, "a", 1, 2, T0 + 2.7, T0 + 10) == [], \
        "an earlier renewal does not shorten the mark"
    await c.end_live_wait(UP, "b")
    assert await c.take_send_slots(UP, "a", 1, 2, T0 + 2.7, T0 + 10) == [1], \
        "no live send waits any more"
