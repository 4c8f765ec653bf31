"""Two Tenang instances on one PostgreSQL database (two pools, two lease owners), their
claims racing at the database: no request is ever leased to both, and a later request of
an ordering key is never claimed while an earlier one is in flight at the other
instance. The order per key is intake order (the store-side sequence), whichever
instance stored the requests."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.postgres.database import Database
from proxy.store.postgres.intake import PostgresIntake
from proxy.store.postgres.queue import PostgresQueue
from proxy.store.records import AttemptRecord, NewRequest

T0 = 1_700_000_000.0
UP = "antrean"
KEYS = 12
PER_KEY = 8
UNKEYED = 60


@dataclass
class Instance:
    """What one Tenang process holds: its own pool on the shared database."""

    owner: str
    db: Database
    intake: PostgresIntake
    queue: PostgresQueue
    claimed: list[str] = field(default_factory=list)


@pytest.fixture
def instances(dbs: tuple[Database, Database]) -> tuple[Instance, Instance]:
    a, b = dbs
    return (Instance("tenang-a", a, PostgresIntake(a), PostgresQueue(a)),
            Instance("tenang-b", b, PostgresIntake(b), PostgresQueue(b)))


def request(n: int, key: str | None) -> NewRequest:
    at = T0 + n / 1000
    return NewRequest(id=new_request_id(at), upstream=UP, method="POST",
                      path=f"/antreanrs/antrean/updatewaktu/{n}", query="",
                      headers=(("Content-Type", "application/json"),), body=b"{}",
                      received_at=at, ordering_key=key)


async def seed(a: Instance, b: Instance) -> dict[str, list[str]]:
    """Requests stored alternately through both instances, each after the previous one
    was committed (as a SIMRS sends task n+1 after task n's 202); returns the ids per
    ordering key in the order they were stored."""
    order: dict[str, list[str]] = {}
    rng = random.Random(13)
    plan: list[str | None] = [f"{UP}:kodebooking=KB{k}" for k in range(KEYS)
                              for _ in range(PER_KEY)]
    plan += [None] * UNKEYED
    rng.shuffle(plan)
    for n, key in enumerate(plan):
        r = request(n, key)
        assert await (a if n % 2 else b).intake.enqueue_or_match(r, 60, r.received_at) is None
        order.setdefault(key or r.id, []).append(r.id)
    return order


async def test_two_instances_never_lease_one_request_both(
        instances: tuple[Instance, Instance]) -> None:
    a, b = instances
    await seed(a, b)
    now = T0 + 100
    for _ in range(40):
        got_a, got_b = await asyncio.gather(
            a.queue.claim_due(UP, now, 5, a.owner, now + 60),
            b.queue.claim_due(UP, now, 5, b.owner, now + 60))
        a.claimed += [r.id for r in got_a]
        b.claimed += [r.id for r in got_b]

    assert a.claimed and b.claimed
    assert not set(a.claimed) & set(b.claimed)
    async with a.db.pool.acquire() as conn:
        leased = {r["id"]: r["lease_owner"] for r in await conn.fetch(
            "SELECT id, lease_owner FROM requests WHERE status = 'in_flight'")}
    assert leased == {**{i: a.owner for i in a.claimed}, **{i: b.owner for i in b.claimed}}


async def test_a_later_request_of_a_key_waits_for_the_earlier_one_at_the_other_instance(
        instances: tuple[Instance, Instance]) -> None:
    """Both instances drain the queue at once, each delivering what it claimed; every
    claim is checked against what the other holds at that moment."""
    a, b = instances
    order = await seed(a, b)
    key_of = {i: key for key, members in order.items() for i in members}
    in_flight: dict[str, str] = {}  # ordering key -> the id claimed and not yet finishing
    finished: list[str] = []  # in the order their completion began
    now = T0 + 100

    async def drain(me: Instance) -> None:
        idle = 0
        while idle < 3:
            claimed = await me.queue.claim_due(UP, now, 4, me.owner, now + 60)
            idle = 0 if claimed else idle + 1
            for r in claimed:
                key = key_of[r.id]
                assert key not in in_flight, f"{r.id} claimed while {in_flight.get(key)} flies"
                earlier = [i for i in finished if key_of[i] == key]
                assert r.id == order[key][len(earlier)], "claimed out of intake order"
                in_flight[key] = r.id
            await asyncio.sleep(0)  # let the other instance claim while these fly
            for r in claimed:
                # From here the other instance may see it final as soon as it commits.
                del in_flight[key_of[r.id]]
                finished.append(r.id)
                await me.queue.complete_attempt(
                    r.id, me.owner, AttemptRecord(1, now, 0.01, Verdict.SUCCESS, 200, None, b""),
                    Transition(Status.SUCCEEDED, "ok"), now)
                me.claimed.append(r.id)

    await asyncio.gather(drain(a), drain(b))

    assert sorted(finished) == sorted(key_of)  # every request once
    assert a.claimed and b.claimed  # both instances delivered
    for key, members in order.items():
        assert [i for i in finished if key_of[i] == key] == members


async def test_a_dead_instances_claims_are_taken_over_after_the_lease(
        instances: tuple[Instance, Instance]) -> None:
    a, b = instances
    await seed(a, b)
    now = T0 + 100
    held = await a.queue.claim_due(UP, now, 10, a.owner, lease_until=now + 30)
    await a.db.close()  # instance a dies holding its leases

    assert await b.queue.take_over_expired(UP, now + 29, b.owner, now + 90) == []
    taken = await b.queue.take_over_expired(UP, now + 31, b.owner, now + 90)

    assert sorted(r.id for r in taken) == sorted(r.id for r in held)
    assert all(r.lease_owner == b.owner and r.status is Status.IN_FLIGHT for r in taken)
    # Taken over once: a third instance finds nothing left to take.
    assert await b.queue.take_over_expired(UP, now + 31, "tenang-c", now + 90) == []


async def test_holds_refreshed_by_both_instances_at_once_are_reported_once(
        instances: tuple[Instance, Instance]) -> None:
    a, b = instances
    key = f"{UP}:kodebooking=KB1"
    first, *later = [request(n, key) for n in range(5)]
    for r in (first, *later):
        assert await a.intake.enqueue_or_match(r, 60, r.received_at) is None
    now = T0 + 100
    [claimed] = await a.queue.claim_due(UP, now, 10, a.owner, now + 60)
    await a.queue.complete_attempt(claimed.id, a.owner, None,
                                   Transition(Status.FAILED, "rejected"), now)

    held_a, held_b = await asyncio.gather(a.queue.refresh_holds(UP, now),
                                          b.queue.refresh_holds(UP, now))

    assert sorted(r.id for r in held_a + held_b) == sorted(r.id for r in later)
    assert all(r.held_by == first.id for r in held_a + held_b)
