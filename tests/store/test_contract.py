"""The Store contract: every backend (see conftest.BACKENDS) must pass every test here."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.errors import Conflict, StoreError, StoreUnavailable
from proxy.store.records import AttemptRecord, NewRequest, StoredAttempt
from tests.store_support import enqueue, hand_back

T0 = 1_700_000_000.0
UP = "antrean"
OTHER = "vclaim"


def req(i: float, *, upstream: str = UP, received_at: float | None = None,
        **fields: Any) -> NewRequest:
    """A request whose id is minted at T0 + i, so ids sort in the order of ``i``."""
    at = T0 + i
    values: dict[str, Any] = {
        "id": new_request_id(at), "upstream": upstream, "method": "POST",
        "path": f"/antreanrs/antrean/add/{i}", "query": f"n={i}",
        "headers": (("Content-Type", "application/json"),), "body": f'{{"n": {i}}}'.encode(),
        "received_at": at if received_at is None else received_at,
    }
    values.update(fields)
    return NewRequest(**values)


async def put(store: Backend, *requests: NewRequest) -> list[NewRequest]:
    for r in requests:
        await enqueue(store.intake, r)
    return list(requests)


def attempt(number: int, started_at: float, verdict: Verdict = Verdict.TRANSIENT,
            **fields: Any) -> AttemptRecord:
    values: dict[str, Any] = {
        "number": number, "started_at": started_at, "duration_s": 0.125, "verdict": verdict,
        "http_status": 503, "error": "upstream answered 503", "response_body": b"busy",
    }
    values.update(fields)
    return AttemptRecord(**values)


def ids(rows: Any) -> list[str]:
    return [r.id for r in rows]


# --- enqueue / get ---------------------------------------------------------------------------


async def test_enqueue_then_get_returns_every_field_intact(store: Backend) -> None:
    headers = (
        ("X-Cons-ID", "12345"),
        ("x-dup", "first"),
        ("Set-Cookie", "a=1"),
        ("Accept", "*/*"),
        ("x-dup", "second"),
        ("Set-Cookie", "b=2"),
        ("X-Catatan", "café ✓ \"quoted\" , semi;colon"),
    )
    body = bytes(range(256)) + b"\xff\xfe\x00\x80 not utf-8 \xc3\x28"
    query = "tglAwal=2024-01-01&kode=A%20B&kode=C&empty="
    r = req(1, method="PUT", path="/antreanrs/antrean/updatewaktu", query=query,
            headers=headers, body=body, received_at=T0 + 1.234567)
    await enqueue(store.intake, r)

    got = await store.log.get(r.id)

    assert got is not None
    assert got.id == r.id
    assert got.upstream == UP
    assert got.method == "PUT"
    assert got.path == "/antreanrs/antrean/updatewaktu"
    assert got.query == query
    assert got.headers == headers
    assert type(got.body) is bytes
    assert got.body == body
    assert got.received_at == T0 + 1.234567
    assert got.status is Status.PENDING
    assert got.attempts == 0
    assert got.next_attempt_at == got.received_at
    assert got.reason is None
    assert got.lease_owner is None
    assert got.lease_expires_at is None


async def test_enqueue_keeps_empty_body_headers_and_query(store: Backend) -> None:
    r = req(1, method="GET", query="", headers=(), body=b"")
    await enqueue(store.intake, r)

    got = await store.log.get(r.id)

    assert got is not None
    assert (got.method, got.query, got.headers, got.body) == ("GET", "", (), b"")


async def test_get_unknown_id_returns_none(store: Backend) -> None:
    await put(store, req(1))
    assert await store.log.get(new_request_id(T0 + 2)) is None
    assert await store.log.attempts(new_request_id(T0 + 2)) == []


async def test_enqueue_refuses_a_duplicate_id_and_keeps_the_first(store: Backend) -> None:
    first = req(1)
    await put(store, first)
    with pytest.raises(StoreError):
        await enqueue(store.intake, dataclasses.replace(first, body=b"second"))
    stored = await store.log.get(first.id)
    assert stored is not None and stored.body == first.body


# --- claim_due -------------------------------------------------------------------------------


async def test_claim_due_leases_due_pending_requests_of_that_upstream_oldest_first(
    store: Backend,
) -> None:
    now = T0 + 10
    # Ids are minted in order 1..5, but due times are not in id order.
    late = req(1, received_at=T0 + 5)
    tie_a = req(2, received_at=T0 + 3)
    tie_b = req(3, received_at=T0 + 3)  # same due time as tie_a: the smaller id goes first
    middle = req(4, received_at=T0 + 4)
    due_now = req(5, received_at=now)  # due exactly at ``now``
    not_yet = req(6, received_at=now + 0.001)
    other = req(0, upstream=OTHER, received_at=T0)
    cancelled = req(0.5, received_at=T0)
    await put(store, late, tie_a, tie_b, middle, due_now, not_yet, other, cancelled)
    await store.operator.transition(cancelled.id, Status.PENDING,
                                    Transition(Status.CANCELLED, "cancelled by operator"), T0 + 1)

    first = await store.queue.claim_due(UP, now, 3, "w1", now + 30)
    second = await store.queue.claim_due(UP, now, 3, "w2", now + 60)
    third = await store.queue.claim_due(UP, now, 3, "w3", now + 90)

    assert ids(first) == [tie_a.id, tie_b.id, middle.id]
    assert ids(second) == [late.id, due_now.id]
    assert third == []
    for row in first:
        assert (row.status, row.lease_owner, row.lease_expires_at) == (
            Status.IN_FLIGHT, "w1", now + 30)
        assert row.attempts == 0
        stored = await store.log.get(row.id)
        assert stored is not None
        assert (stored.status, stored.lease_owner, stored.lease_expires_at) == (
            Status.IN_FLIGHT, "w1", now + 30)
    for row in second:
        stored = await store.log.get(row.id)
        assert stored is not None
        assert (stored.status, stored.lease_owner) == (Status.IN_FLIGHT, "w2")
    for untouched, status in ((not_yet, Status.PENDING), (other, Status.PENDING),
                              (cancelled, Status.CANCELLED)):
        stored = await store.log.get(untouched.id)
        assert stored is not None
        assert stored.status is status
        assert stored.lease_owner is None


async def test_claimed_rows_carry_the_request(store: Backend) -> None:
    (r,) = await put(store, req(1, headers=(("A", "1"), ("A", "2")), body=b"\x00\xff"))

    (row,) = await store.queue.claim_due(UP, T0 + 5, 10, "w1", T0 + 35)

    assert (row.id, row.method, row.path, row.query, row.headers, row.body, row.received_at) == (
        r.id, r.method, r.path, r.query, r.headers, r.body, r.received_at)


async def test_concurrent_claims_never_lease_a_request_twice(store: Backend) -> None:
    requests = await put(store, *(req(i) for i in range(1, 9)))

    batches = await asyncio.gather(
        *(store.queue.claim_due(UP, T0 + 100, 3, f"w{n}", T0 + 130) for n in range(4)))

    leased = [r.id for batch in batches for r in batch]
    assert sorted(leased) == sorted(ids(requests))
    for n, batch in enumerate(batches):
        for row in batch:
            stored = await store.log.get(row.id)
            assert stored is not None
            assert stored.lease_owner == f"w{n}"


# --- complete_attempt / release --------------------------------------------------------------


async def test_complete_attempt_persists_attempt_and_transition(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)
    first = attempt(1, T0 + 11, Verdict.TRANSIENT, duration_s=0.25, http_status=503,
                    error="upstream answered 503", response_body=b"\x00\xffsibuk")

    await store.queue.complete_attempt(
        r.id, "w1", first, Transition(Status.PENDING, "upstream answered 503", T0 + 20),
        T0 + 12)

    got = await store.log.get(r.id)
    assert got is not None
    assert got.status is Status.PENDING
    assert got.reason == "upstream answered 503"
    assert got.next_attempt_at == T0 + 20
    assert got.attempts == 1
    assert got.updated_at == T0 + 12
    assert (got.lease_owner, got.lease_expires_at) == (None, None)
    assert await store.log.attempts(r.id) == [StoredAttempt(
        request_id=r.id, number=1, started_at=T0 + 11, duration_s=0.25,
        verdict=Verdict.TRANSIENT, http_status=503, error="upstream answered 503",
        response_body=b"\x00\xffsibuk")]

    assert await store.queue.claim_due(UP, T0 + 19, 1, "w2", T0 + 50) == []
    (again,) = await store.queue.claim_due(UP, T0 + 20, 1, "w2", T0 + 50)
    assert again.attempts == 1
    second = attempt(2, T0 + 21, Verdict.SUCCESS, duration_s=0.5, http_status=None,
                     error=None, response_body=None)
    await store.queue.complete_attempt(r.id, "w2", second, Transition(Status.SUCCEEDED, "ok"),
                                       T0 + 22)

    got = await store.log.get(r.id)
    assert got is not None
    assert (got.status, got.reason, got.next_attempt_at, got.attempts) == (
        Status.SUCCEEDED, "ok", None, 2)
    recorded = await store.log.attempts(r.id)
    assert [a.number for a in recorded] == [1, 2]
    assert recorded[1] == StoredAttempt(
        request_id=r.id, number=2, started_at=T0 + 21, duration_s=0.5,
        verdict=Verdict.SUCCESS, http_status=None, error=None, response_body=None)


async def test_complete_attempt_without_attempt_keeps_the_count(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)
    await store.queue.complete_attempt(r.id, "w1", attempt(1, T0 + 11),
                                       Transition(Status.PENDING, "503", T0 + 20), T0 + 12)
    await store.queue.claim_due(UP, T0 + 20, 1, "w1", T0 + 50)

    await store.queue.complete_attempt(
        r.id, "w1", None, Transition(Status.DEAD, "max age reached (60 s): 503"), T0 + 21)

    got = await store.log.get(r.id)
    assert got is not None
    assert (got.status, got.reason, got.attempts) == (
        Status.DEAD, "max age reached (60 s): 503", 1)
    assert [a.number for a in await store.log.attempts(r.id)] == [1]


async def test_non_owner_cannot_complete_or_hand_back(store: Backend) -> None:
    leased, idle = await put(store, req(1), req(2, received_at=T0 + 50))
    await store.queue.claim_due(UP, T0 + 10, 10, "w1", T0 + 40)
    before = await store.log.get(leased.id)
    idle_before = await store.log.get(idle.id)

    with pytest.raises(Conflict):
        await store.queue.complete_attempt(leased.id, "w2", attempt(1, T0 + 11),
                                           Transition(Status.SUCCEEDED, "ok"), T0 + 12)
    with pytest.raises(Conflict):
        await hand_back(store, leased.id, "w2", T0 + 12)
    # Not leased at all: nobody owns it.
    with pytest.raises(Conflict):
        await store.queue.complete_attempt(idle.id, "w1", attempt(1, T0 + 11),
                                           Transition(Status.SUCCEEDED, "ok"), T0 + 12)
    with pytest.raises(Conflict):
        await hand_back(store, idle.id, "w1", T0 + 12)
    with pytest.raises(Conflict):
        await hand_back(store, new_request_id(T0 + 3), "w1", T0 + 12)

    assert await store.log.get(leased.id) == before
    assert await store.log.get(idle.id) == idle_before
    assert await store.log.attempts(leased.id) == []
    assert await store.log.attempts(idle.id) == []


async def test_a_claim_handed_back_is_pending_again_without_an_attempt(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)

    await hand_back(store, r.id, "w1", T0 + 11)

    got = await store.log.get(r.id)
    assert got is not None
    assert got.status is Status.PENDING
    assert got.attempts == 0
    assert got.next_attempt_at == r.received_at
    assert (got.lease_owner, got.lease_expires_at) == (None, None)
    assert await store.log.attempts(r.id) == []
    with pytest.raises(Conflict):
        await hand_back(store, r.id, "w1", T0 + 12)
    assert ids(await store.queue.claim_due(UP, T0 + 12, 1, "w2", T0 + 42)) == [r.id]


# --- take_over_expired -----------------------------------------------------------------------


async def test_take_over_expired_takes_only_leases_that_ended_before_now(store: Backend) -> None:
    now = T0 + 30
    expired, boundary, live, pending = await put(
        store, req(1), req(2), req(3), req(4, received_at=T0 + 100))
    foreign = req(5, upstream=OTHER)
    await enqueue(store.intake, foreign)
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 20)  # expired
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", now)  # ends exactly at now: not before it
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)  # live
    await store.queue.claim_due(OTHER, T0 + 10, 1, "w1", T0 + 20)  # expired, other upstream

    taken = await store.queue.take_over_expired(UP, now, "w2", now + 60)

    assert ids(taken) == [expired.id]
    assert (taken[0].status, taken[0].lease_owner, taken[0].lease_expires_at) == (
        Status.IN_FLIGHT, "w2", now + 60)
    got = await store.log.get(expired.id)
    assert got is not None
    assert (got.status, got.lease_owner, got.lease_expires_at) == (
        Status.IN_FLIGHT, "w2", now + 60)
    for row, owner, status in ((boundary, "w1", Status.IN_FLIGHT),
                               (live, "w1", Status.IN_FLIGHT),
                               (pending, None, Status.PENDING),
                               (foreign, "w1", Status.IN_FLIGHT)):
        stored = await store.log.get(row.id)
        assert stored is not None
        assert (stored.status, stored.lease_owner) == (status, owner)
    assert await store.queue.take_over_expired(UP, now, "w3", now + 90) == []

    # The dead worker's late result is refused; the new owner's is recorded.
    with pytest.raises(Conflict):
        await store.queue.complete_attempt(expired.id, "w1", attempt(1, T0 + 11),
                                           Transition(Status.SUCCEEDED, "ok"), now + 1)
    with pytest.raises(Conflict):
        await hand_back(store, expired.id, "w1", now + 1)
    assert await store.log.attempts(expired.id) == []
    await store.queue.complete_attempt(
        expired.id, "w2",
        attempt(1, T0 + 11, Verdict.INTERRUPTED, http_status=None, error="lease expired",
                response_body=None),
        Transition(Status.HELD, "lease expired mid-delivery"), now + 1)
    got = await store.log.get(expired.id)
    assert got is not None
    assert (got.status, got.attempts, got.lease_owner) == (Status.HELD, 1, None)


# --- transition ------------------------------------------------------------------------------


async def test_transition_requires_the_expected_status(store: Backend) -> None:
    (r,) = await put(store, req(1))
    before = await store.log.get(r.id)

    with pytest.raises(Conflict):
        await store.operator.transition(r.id, Status.FAILED,
                                        Transition(Status.PENDING, "retry requested by operator",
                                                   T0 + 5), T0 + 5)
    assert await store.log.get(r.id) == before

    await store.operator.transition(r.id, Status.PENDING,
                                    Transition(Status.CANCELLED, "cancelled by operator"), T0 + 6)
    got = await store.log.get(r.id)
    assert got is not None
    assert (got.status, got.reason, got.next_attempt_at, got.updated_at) == (
        Status.CANCELLED, "cancelled by operator", None, T0 + 6)

    with pytest.raises(Conflict):
        await store.operator.transition(r.id, Status.PENDING,
                                        Transition(Status.CANCELLED,
                                                   "cancelled by operator"), T0 + 7)
    with pytest.raises(Conflict):
        await store.operator.transition(new_request_id(T0 + 2), Status.PENDING,
                                        Transition(Status.CANCELLED,
                                                   "cancelled by operator"), T0 + 7)
    assert await store.log.get(r.id) == got


async def test_operator_retry_makes_a_failed_request_due_again(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)
    await store.queue.complete_attempt(r.id, "w1", attempt(1, T0 + 11, Verdict.PERMANENT,
                                                           http_status=400),
                                       Transition(Status.FAILED, "400 bad request"), T0 + 12)
    assert await store.queue.claim_due(UP, T0 + 100, 1, "w1", T0 + 140) == []

    await store.operator.transition(r.id, Status.FAILED,
                                    Transition(Status.PENDING, "retry requested by operator",
                                               T0 + 50),
                                    T0 + 50)

    assert await store.queue.next_due_at(UP) == T0 + 50
    assert ids(await store.queue.claim_due(UP, T0 + 50, 1, "w1", T0 + 80)) == [r.id]


async def test_operator_retry_time_is_kept_across_later_transitions(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)
    await store.queue.complete_attempt(r.id, "w1", None, Transition(Status.FAILED, "rejected"),
                                       T0 + 11)
    got = await store.log.get(r.id)
    assert got is not None and got.retried_at is None and got.age_from == got.received_at

    await store.operator.transition(
        r.id, Status.FAILED,
        Transition(Status.PENDING, "retry", next_attempt_at=T0 + 50, retried_at=T0 + 50),
        T0 + 50)
    got = await store.log.get(r.id)
    assert got is not None and got.retried_at == T0 + 50 and got.age_from == T0 + 50

    await store.operator.transition(r.id, Status.PENDING, Transition(Status.CANCELLED, "cancel"),
                                    T0 + 60)
    got = await store.log.get(r.id)
    assert got is not None and got.retried_at == T0 + 50


# --- summary / next_due_at / check_writable --------------------------------------------------


async def test_summary_counts_oldest_pending_and_last_attempt(store: Backend) -> None:
    assert await store.log.summary() == {}
    flying, ok_then_pending, later_pending, _pending = await put(
        store, req(1), req(2), req(3), req(4))
    refused = req(5, upstream=OTHER)
    await enqueue(store.intake, refused)

    # The oldest one gets claimed and stays in flight: still not delivered, so it is
    # the oldest waiting request.
    await store.queue.claim_due(UP, T0 + 1, 1, "w1", T0 + 100)
    # ok_then_pending: an attempt at +50, back to pending.
    await store.queue.claim_due(UP, T0 + 2, 1, "w1", T0 + 100)
    await store.queue.complete_attempt(ok_then_pending.id, "w1", attempt(1, T0 + 50),
                                       Transition(Status.PENDING, "503", T0 + 60), T0 + 51)
    # later_pending succeeds on an attempt that started earlier (+45) but is recorded later.
    await store.queue.claim_due(UP, T0 + 3, 1, "w1", T0 + 100)
    await store.queue.complete_attempt(
        later_pending.id, "w1", attempt(1, T0 + 45, Verdict.SUCCESS, http_status=200),
        Transition(Status.SUCCEEDED, "ok"), T0 + 52)
    # The other upstream refuses its only request.
    await store.queue.claim_due(OTHER, T0 + 5, 1, "w1", T0 + 100)
    await store.queue.complete_attempt(
        refused.id, "w1", attempt(1, T0 + 30, Verdict.PERMANENT, http_status=400),
        Transition(Status.FAILED, "400"), T0 + 31)

    summary = await store.log.summary()

    assert set(summary) == {UP, OTHER}
    up = summary[UP]
    assert dict(up.counts) == {Status.PENDING: 2, Status.IN_FLIGHT: 1, Status.SUCCEEDED: 1}
    assert up.oldest_pending_at == flying.received_at
    assert (up.last_attempt_at, up.last_verdict) == (T0 + 50, Verdict.TRANSIENT)
    other = summary[OTHER]
    assert dict(other.counts) == {Status.FAILED: 1}
    assert other.oldest_pending_at is None
    assert (other.last_attempt_at, other.last_verdict) == (T0 + 30, Verdict.PERMANENT)


async def test_summary_of_upstream_without_attempts(store: Backend) -> None:
    await put(store, req(2), req(1))

    summary = await store.log.summary()

    assert set(summary) == {UP}
    assert dict(summary[UP].counts) == {Status.PENDING: 2}
    assert summary[UP].oldest_pending_at == T0 + 1
    assert (summary[UP].last_attempt_at, summary[UP].last_verdict) == (None, None)


async def test_next_due_at_is_the_earliest_pending_next_attempt(store: Backend) -> None:
    assert await store.queue.next_due_at(UP) is None
    early, late = await put(store, req(1, received_at=T0 + 3), req(2, received_at=T0 + 5))
    await enqueue(store.intake, req(3, upstream=OTHER, received_at=T0))
    assert await store.queue.next_due_at(UP) == T0 + 3

    await store.queue.claim_due(UP, T0 + 3, 1, "w1", T0 + 30)
    assert await store.queue.next_due_at(UP) == T0 + 5

    await store.queue.complete_attempt(early.id, "w1", attempt(1, T0 + 4),
                                       Transition(Status.PENDING, "503", T0 + 4.5), T0 + 4)
    assert await store.queue.next_due_at(UP) == T0 + 4.5

    for r in (early, late):
        await store.operator.transition(r.id, Status.PENDING,
                                        Transition(Status.CANCELLED,
                                                   "cancelled by operator"), T0 + 6)
    assert await store.queue.next_due_at(UP) is None
    assert await store.queue.next_due_at(OTHER) == T0
    assert await store.queue.next_due_at("unknown") is None


async def test_check_writable_on_an_open_store(store: Backend) -> None:
    await store.check_writable()
    await store.check_writable()
    (r,) = await put(store, req(1))
    assert await store.log.get(r.id) is not None


# --- close -----------------------------------------------------------------------------------


async def test_every_call_after_close_raises_store_unavailable(store: Backend) -> None:
    (r,) = await put(store, req(1))
    await store.close()
    await store.close()  # idempotent

    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("enqueue", lambda: enqueue(store.intake, req(2))),
        ("claim_due", lambda: store.queue.claim_due(UP, T0 + 10, 1, "w1", T0 + 40)),
        ("complete_attempt", lambda: store.queue.complete_attempt(
            r.id, "w1", None, Transition(Status.SUCCEEDED, "ok"), T0 + 10)),
        ("take_over_expired", lambda: store.queue.take_over_expired(UP, T0 + 10, "w1", T0 + 40)),
        ("transition", lambda: store.operator.transition(
            r.id, Status.PENDING, Transition(Status.CANCELLED, "x"), T0 + 10)),
        ("get", lambda: store.log.get(r.id)),
        ("attempts", lambda: store.log.attempts(r.id)),
        ("summary", store.log.summary),
        ("next_due_at", lambda: store.queue.next_due_at(UP)),
        ("check_writable", store.check_writable),
    ]
    for name, call in calls:
        with pytest.raises(StoreUnavailable) as caught:
            await call()
        assert isinstance(caught.value, StoreError), name
        assert "unavailable" in caught.value.reason, name
