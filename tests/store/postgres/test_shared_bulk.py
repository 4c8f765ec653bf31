"""Bulk retry jobs with several instances on one PostgreSQL store: a job is walked by the
instance holding its lease. One leased by an instance that died is resumed by another
once the lease has run out, and by only one of those looking for it at that moment:
every request is retried once."""

from __future__ import annotations

import asyncio

from proxy.ids import new_request_id
from proxy.lifecycle import Status
from proxy.ops.bulk import BulkRetries, filter_to_json
from proxy.ops.operations import Operations
from proxy.store.backend import Backend
from proxy.store.records import NewRequest, RequestFilter
from tests.admin_ui.helpers import settle
from tests.conftest import FakeClock, wait_until
from tests.store_support import enqueue


def bulk(backend: Backend, owner: str, clock: FakeClock) -> BulkRetries:
    ops = Operations(backend.log, backend.operator, backend.audit, None, clock)
    return BulkRetries(ops, backend.schedules, batch=1, interval_s=0.0, clock=clock,
                       owner=owner)


async def test_a_job_of_a_dead_instance_is_resumed_by_one_other_after_its_lease(
        backends: tuple[Backend, Backend]) -> None:
    b_store, c_store = backends
    ids = []
    for n in range(3):
        request = NewRequest(id=new_request_id(), upstream="antrean", method="POST",
                             path=f"/antreanrs/antrean/add/{n}", query="", headers=(),
                             body=b"{}", received_at=1.0)
        await enqueue(b_store.intake, request)
        await settle(b_store, request.id, Status.DEAD)
        ids.append(request.id)
    clock = FakeClock()
    # The dead instance started the job and leased it, then never came back.
    job = await b_store.schedules.add_bulk_job(
        "opa", filter_to_json(RequestFilter(status=Status.DEAD)), 3, clock())
    assert await b_store.schedules.lease_bulk_job(job.id, "dead", clock(), clock() + 30)
    b, c = bulk(b_store, "b", clock), bulk(c_store, "c", clock)
    try:
        assert await b.resume() == [] and await c.resume() == []  # still leased
        clock.advance(30)

        resumed = await asyncio.gather(b.resume(), c.resume())

        assert sorted(len(r) for r in resumed) == [0, 1], "resumed by exactly one"

        async def finished() -> bool:
            done = await b_store.schedules.bulk_job(job.id)
            return done is not None and done.finished_at is not None

        await wait_until(finished, what="the resumed job to finish")
        done = await b_store.schedules.bulk_job(job.id)
        assert done is not None and (done.retried, done.skipped) == (3, 0)
        entries = await b_store.audit.audit_entries(limit=50)
        assert sorted(str(e.target) for e in entries if e.action == "retry") == sorted(ids)
        assert [e.action for e in entries].count("bulk_retry_resumed") == 1
        for request_id in ids:
            stored = await b_store.log.get(request_id)
            assert stored is not None and stored.status is Status.PENDING
    finally:
        await b.close()
        await c.close()
