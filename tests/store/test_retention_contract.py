"""Retention verbs: one contract for every store backend (see conftest BACKENDS).

Old final requests lose their bodies (metadata kept) or their whole rows, one batch at a
time; nothing that is not final (``lifecycle.FINAL``) is ever purged, however old.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.lifecycle import FINAL, Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.records import NewCallback, PurgeKind, StoredRequest
from tests.store.test_contract import T0, UP, attempt, put, req

OWNER = "w1"
SETTLED = T0 + 100  # when the settled requests below reached their state
CUTOFF = T0 + 1_000  # purge what is final since before this
NOW = T0 + 5_000
NOT_FINAL = sorted(set(Status) - FINAL)


async def in_state(store: Backend, i: float, status: Status, *, at: float = SETTLED,
                   callback: NewCallback | None = None, **fields: Any) -> StoredRequest:
    """A request received at T0 + i that reached ``status`` at ``at`` after one attempt
    (it starts in flight, as a deadline-mode request does)."""
    [r] = await put(store, req(i, lease_owner=OWNER, lease_expires_at=T0 + 10_000, **fields))
    if status is not Status.IN_FLIGHT:
        verdict = Verdict.SUCCESS if status is Status.SUCCEEDED else Verdict.PERMANENT
        await store.queue.complete_attempt(
            r.id, OWNER, attempt(1, at - 1, verdict, response_body=b'{"noKartu":"0001"}'),
            Transition(status, "settled", next_attempt_at=at if status is Status.PENDING
                       else None), at, callback=callback)
    got = await store.log.get(r.id)
    assert got is not None and got.status is status
    return got


async def purge_all(store: Backend, kind: PurgeKind, before: float = CUTOFF,
                    limit: int = 500) -> int:
    """Walk every batch as the retention service does; the total purged."""
    total, after_id = 0, None
    while True:
        batch = await store.retention.purge(kind, before, after_id, limit, NOW)
        total += batch.purged
        if batch.after_id is None:
            return total
        after_id = batch.after_id


@pytest.mark.parametrize("status", sorted(FINAL))
async def test_an_old_final_request_loses_its_bodies_and_keeps_its_metadata(
        store: Backend, status: Status) -> None:
    r = await in_state(store, 1, status)

    assert await purge_all(store, PurgeKind.BODIES) == 1

    got = await store.log.get(r.id)
    assert got is not None
    assert (got.body, got.purged_at) == (b"", NOW)
    assert (got.status, got.path, got.query, got.headers, got.attempts, got.reason,
            got.updated_at) == (status, r.path, r.query, r.headers, 1, "settled", SETTLED)
    [a] = await store.log.attempts(r.id)
    assert (a.number, a.response_body) == (1, None)
    assert await purge_all(store, PurgeKind.BODIES) == 0, "purged once, not again"


@pytest.mark.parametrize("status", sorted(FINAL))
async def test_an_old_final_request_goes_whole_with_its_attempts(store: Backend,
                                                                status: Status) -> None:
    r = await in_state(store, 1, status)

    assert await purge_all(store, PurgeKind.ROWS) == 1

    assert await store.log.get(r.id) is None
    assert await store.log.attempts(r.id) == []
    summary = (await store.log.summary()).get(UP)
    assert summary is None or sum(summary.counts.values()) == 0, "counted out"


@pytest.mark.parametrize("kind", list(PurgeKind))
async def test_nothing_that_is_not_final_is_purged_however_old(store: Backend,
                                                               kind: PurgeKind) -> None:
    kept = [await in_state(store, i, s, at=T0 + i + 1) for i, s in enumerate(NOT_FINAL, 1)]
    history = {r.id: await store.log.attempts(r.id) for r in kept}

    assert await store.retention.count_purgeable(kind, NOW + 10**9) == 0
    assert await purge_all(store, kind, before=NOW + 10**9) == 0

    for r in kept:
        assert await store.log.get(r.id) == r
        assert await store.log.attempts(r.id) == history[r.id]


@pytest.mark.parametrize("kind", list(PurgeKind))
async def test_a_request_final_since_the_cutoff_is_kept(store: Backend,
                                                        kind: PurgeKind) -> None:
    # Received long ago, but it settled only after the cutoff: kept, counted from then.
    young = await in_state(store, 1, Status.SUCCEEDED, at=CUTOFF)
    old = await in_state(store, 2, Status.SUCCEEDED, at=CUTOFF - 1)

    assert await purge_all(store, kind) == 1

    got = await store.log.get(young.id)
    assert got is not None and got.body == young.body
    gone = await store.log.get(old.id)
    assert gone is None if kind is PurgeKind.ROWS else gone is not None and gone.body == b""


@pytest.mark.parametrize("kind", list(PurgeKind))
async def test_a_request_with_a_callback_still_to_send_is_kept(store: Backend,
                                                               kind: PurgeKind) -> None:
    r = await in_state(store, 1, Status.SUCCEEDED,
                       callback=NewCallback("http://127.0.0.1:9/hook", b'{"id":1}'))

    assert await purge_all(store, kind) == 0

    [cb] = await store.outbox.claim_callbacks(NOW, 10, NOW + 30)
    assert (cb.request_id, cb.payload) == (r.id, b'{"id":1}')
    await store.outbox.finish_callback(cb.id, True, None, None, NOW)
    assert await purge_all(store, kind) == 1, "once delivered, it may go"
    if kind is PurgeKind.ROWS:
        assert await store.log.get(r.id) is None
    assert await store.outbox.claim_callbacks(NOW + 10**6, 10, NOW + 10**6) == []


async def test_a_dead_callback_does_not_keep_it(store: Backend) -> None:
    r = await in_state(store, 1, Status.FAILED,
                       callback=NewCallback("http://127.0.0.1:9/hook", b'{"nik":"3201"}'))
    [cb] = await store.outbox.claim_callbacks(NOW, 10, NOW + 30)
    await store.outbox.finish_callback(cb.id, False, "gone", None, NOW)  # dead

    assert await purge_all(store, PurgeKind.BODIES) == 1

    got = await store.log.get(r.id)
    assert got is not None and got.body == b""


async def test_a_final_request_others_wait_behind_keeps_its_row(store: Backend) -> None:
    failed = await in_state(store, 1, Status.FAILED, ordering_key="kodebooking=KB1")
    waiting = await in_state(store, 2, Status.HELD, ordering_key="kodebooking=KB1")
    other = await in_state(store, 3, Status.DEAD, ordering_key="kodebooking=KB2")

    assert await store.retention.count_purgeable(PurgeKind.ROWS, CUTOFF) == 1
    assert await purge_all(store, PurgeKind.ROWS) == 1

    assert await store.log.get(failed.id) is not None
    assert await store.log.get(waiting.id) is not None
    assert await store.log.get(other.id) is None
    # Its body may still go: the row (and what waits behind it) stays as it is.
    assert await purge_all(store, PurgeKind.BODIES) == 1


@pytest.mark.parametrize("kind", list(PurgeKind))
async def test_the_walk_goes_in_batches_of_the_limit_and_ends(store: Backend,
                                                              kind: PurgeKind) -> None:
    rows = [await in_state(store, i, Status.SUCCEEDED) for i in range(1, 6)]
    young = await in_state(store, 2_000, Status.SUCCEEDED)  # received after the cutoff

    first = await store.retention.purge(kind, CUTOFF, None, 2, NOW)
    assert (first.purged, first.after_id) == (2, rows[1].id)
    second = await store.retention.purge(kind, CUTOFF, first.after_id, 2, NOW)
    assert (second.purged, second.after_id) == (2, rows[3].id)
    last = await store.retention.purge(kind, CUTOFF, second.after_id, 2, NOW)
    assert (last.purged, last.after_id) == (1, None)

    got = await store.log.get(young.id)
    assert got is not None and got.body == young.body


@pytest.mark.parametrize("kind", list(PurgeKind))
async def test_counting_what_would_go_changes_nothing(store: Backend, kind: PurgeKind) -> None:
    rows = [await in_state(store, i, s) for i, s in enumerate(sorted(FINAL), 1)]
    await in_state(store, 10, Status.HELD)

    assert await store.retention.count_purgeable(kind, CUTOFF) == len(rows)

    for r in rows:
        got = await store.log.get(r.id)
        assert got is not None and got.body == r.body and got.purged_at is None
    assert await purge_all(store, kind) == len(rows)
    assert await store.retention.count_purgeable(kind, CUTOFF) == 0


async def test_purged_names_the_requests_whose_bodies_a_purge_dropped(store: Backend) -> None:
    """What the admin UI asks to tell a purged request from one that never was."""
    old = await in_state(store, 1, Status.SUCCEEDED)
    kept = await in_state(store, 2, Status.SUCCEEDED, at=CUTOFF + 1)
    assert await store.retention.purged([old.id, kept.id]) == {}
    await purge_all(store, PurgeKind.BODIES)
    assert await store.retention.purged([old.id, kept.id, "01KNOSUCHREQUEST"]) == {
        old.id: NOW}
