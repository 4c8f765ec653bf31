"""Store contract: the Coordination role. A breaker move is a compare-and-set (of moves
from one generation exactly one wins), the half-open probe is one lease at a time, and
the send rate is one token bucket that concurrent takes never overdraw."""

from __future__ import annotations

import asyncio

from proxy.store.backend import Backend
from tests.store.test_contract import T0, UP


async def test_a_breaker_starts_closed_and_a_move_names_the_generation_it_starts_from(
        store: Backend) -> None:
    first = await store.coordination.breaker(UP)
    assert (first.state, first.generation, first.opened_at) == ("closed", 0, None)

    moved = await store.coordination.move_breaker(UP, 0, "open", T0)
    assert moved is not None and (moved.state, moved.generation, moved.opened_at) == \
        ("open", 1, T0)
    assert await store.coordination.move_breaker(UP, 0, "open", T0 + 1) is None, \
        "a move from a generation already left loses"
    assert await store.coordination.breaker(UP) == moved
    assert (await store.coordination.breaker("other")).state == "closed", "one per upstream"


async def test_of_concurrent_moves_from_one_generation_exactly_one_wins(
        store: Backend) -> None:
    await store.coordination.breaker(UP)
    won = await asyncio.gather(*(store.coordination.move_breaker(UP, 0, "open", T0 + i)
                                 for i in range(6)))
    winners = [m for m in won if m is not None]
    assert len(winners) == 1
    assert await store.coordination.breaker(UP) == winners[0]


async def test_the_probe_is_leased_once_the_reset_timeout_is_over_and_to_one_owner(
        store: Backend) -> None:
    c = store.coordination
    assert await c.lease_probe(UP, "a", T0, 5.0, T0 + 10) is None, "closed: nothing to probe"
    await c.breaker(UP)
    await c.move_breaker(UP, 0, "open", T0)
    assert await c.lease_probe(UP, "a", T0 + 4.9, 5.0, T0 + 14) is None, "too early"

    leases = await asyncio.gather(*(c.lease_probe(UP, owner, T0 + 5, 5.0, T0 + 15)
                                    for owner in ("a", "b", "c")))
    held = [lease for lease in leases if lease is not None]
    assert len(held) == 1
    lease = held[0]
    assert (lease.state, lease.generation, lease.probe_until) == ("half-open", 2, T0 + 15)
    assert await c.lease_probe(UP, "d", T0 + 14, 5.0, T0 + 24) is None, "still held"

    again = await c.lease_probe(UP, "d", T0 + 15, 5.0, T0 + 25)
    assert again is not None and again.probe_owner == "d" and again.generation == 3, \
        "an expired lease (its holder died) goes to the next one asking"
    assert await c.move_breaker(UP, lease.generation, "closed", None) is None, \
        "the first holder's late result no longer moves the breaker"


async def test_a_move_ends_the_probe_lease(store: Backend) -> None:
    c = store.coordination
    await c.breaker(UP)
    await c.move_breaker(UP, 0, "open", T0)
    lease = await c.lease_probe(UP, "a", T0 + 5, 5.0, T0 + 15)
    assert lease is not None
    reopened = await c.move_breaker(UP, lease.generation, "open", T0 + 6)
    assert reopened is not None
    assert (reopened.probe_owner, reopened.probe_until) == (None, None)
    assert await c.lease_probe(UP, "b", T0 + 10, 5.0, T0 + 20) is None, "re-timed at T0 + 6"
    assert await c.lease_probe(UP, "b", T0 + 11, 5.0, T0 + 21) is not None


async def test_the_send_rate_is_one_bucket_full_at_first_refilled_at_the_rate(
        store: Backend) -> None:
    c = store.coordination
    assert await c.take_send_tokens(UP, 3, T0, 10.0, 5.0) == 3
    assert await c.take_send_tokens(UP, 5, T0, 10.0, 5.0) == 2, "the burst is all there is"
    assert await c.take_send_tokens(UP, 5, T0, 10.0, 5.0) == 0
    assert await c.take_send_tokens(UP, 5, T0 + 0.25, 10.0, 5.0) == 2
    assert await c.take_send_tokens(UP, 5, T0 + 0.2, 10.0, 5.0) == 0, \
        "a clock behind the bucket's adds nothing"
    await c.return_send_tokens(UP, 2, 5.0)
    assert await c.take_send_tokens(UP, 5, T0 + 0.25, 10.0, 5.0) == 2
    assert await c.take_send_tokens(UP, 100, T0 + 60, 10.0, 5.0) == 5, "saved up to the burst"
    assert await c.take_send_tokens("other", 9, T0, 10.0, 5.0) == 5, "one bucket per upstream"


async def test_concurrent_takes_never_overdraw_the_bucket(store: Backend) -> None:
    c = store.coordination
    takes = await asyncio.gather(*(c.take_send_tokens(UP, 3, T0, 10.0, 20.0)
                                   for _ in range(12)))
    assert sum(takes) == 20


async def test_concurrent_first_reads_of_a_new_breaker_all_get_it(store: Backend) -> None:
    # Instances starting together each read an upstream's breaker before any row exists.
    found = await asyncio.gather(*(store.coordination.breaker("antrean-first")
                                   for _ in range(16)))
    assert {(b.state, b.generation) for b in found} == {(found[0].state, found[0].generation)}
