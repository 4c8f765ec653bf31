"""Bulk retry jobs (real SQLite file, the UI over loopback HTTP): a job lives in the store,
so a restart resumes it where it stopped; and it retries only the set the operator
confirmed, each request once."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from proxy.lifecycle import Status, Transition
from proxy.store import open_store
from tests.admin_ui.conftest import Browser, bpjs_ui_config, submit
from tests.admin_ui.helpers import settle
from tests.conftest import wait_until


def paced(config: Config, interval_s: float) -> Config:
    """One request per batch, ``interval_s`` between batches."""
    return dataclasses.replace(config, admin=dataclasses.replace(
        config.admin, bulk_batch=1, bulk_interval_s=interval_s))


async def test_a_bulk_job_cut_short_by_a_restart_is_resumed_where_it_stopped(
        tmp_path: Path, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession,
        start_tenang: Callable[..., Awaitable[Tenang]],
        browsers: Callable[[str], Browser]) -> None:
    config = bpjs_ui_config(tmp_path, bpjs_sim)
    # First run: an hour between batches, so the job is stopped after its first one.
    first = Tenang(paced(config, 3600.0), relay_enabled=False)
    await first.start()
    try:
        ids = [await submit(http, first.gateway_url, f'{{"kodebooking": "KB-R{i}"}}')
               for i in range(3)]
        for request_id in ids:
            await settle(first.backend, request_id, Status.DEAD)
        b = browsers(first.admin_url)
        assert await b.login("opa") == 303
        status, _, resp = await b.post("/bulk", {"status": "dead", "expected": "3"})
        assert status == 303 and resp.headers["Location"] == "/bulk/1"
        jobs = first.backend.schedules

        async def first_batch_saved() -> bool:
            job = await jobs.bulk_job(1)
            return job is not None and job.retried == 1

        await wait_until(first_batch_saved, what="the first batch to be recorded")
    finally:
        await first.stop()
    statuses = [(await first_store_status(config, request_id)) for request_id in ids]
    assert sorted(statuses) == ["dead", "dead", "pending"]

    # Second run, unpaced: the job resumes by itself and finishes the other two.
    second: Tenang = await start_tenang(paced(config, 0.0), relay_enabled=False)
    jobs = second.backend.schedules

    async def finished() -> bool:
        # The job is marked finished just before its closing audit entry is written.
        job = await jobs.bulk_job(1)
        entries = await second.backend.audit.audit_entries(limit=1)
        return (job is not None and job.finished_at is not None and bool(entries)
                and entries[0].action == "bulk_retry_done")

    await wait_until(finished, what="the resumed job to finish and audit its end")
    job = await jobs.bulk_job(1)
    assert job is not None and (job.retried, job.skipped, job.error) == (3, 0, None)
    for request_id in ids:
        stored = await second.backend.log.get(request_id)
        assert stored is not None and stored.status is Status.PENDING
    actions = [e.action for e in await second.backend.audit.audit_entries(limit=50)]
    assert actions.count("retry") == 3, "each request retried once, none twice"
    assert actions.index("bulk_retry_done") < actions.index("bulk_retry_resumed") \
        < actions.index("bulk_retry")
    # The job page reads the stored job; a new job gets a new number.
    b = browsers(second.admin_url)
    assert await b.login("opa") == 303
    _, body, _ = await b.get("/bulk/1.json")
    data = json.loads(body)
    assert data["stop"] is True and data["fields"]["retried"] == "3"
    await settle(second.backend, await submit(http, second.gateway_url,
                                            '{"kodebooking": "KB-R9"}'), Status.DEAD)
    status, _, resp = await b.post("/bulk", {"status": "dead", "expected": "1"})
    assert status == 303 and resp.headers["Location"] == "/bulk/2"


async def first_store_status(config: Config, request_id: str) -> str:
    """A request's status read from the database file by a fresh store (after a stop)."""
    store = open_store(config.store)
    await store.open()
    try:
        stored = await store.log.get(request_id)
        assert stored is not None
        return stored.status.value
    finally:
        await store.close()


async def test_a_job_never_retries_a_request_twice(
        tmp_path: Path, bpjs_sim: RunningSimulator, http: aiohttp.ClientSession,
        start_tenang: Callable[..., Awaitable[Tenang]],
        browsers: Callable[[str], Browser]) -> None:
    # One request per batch and a pause between batches, in which the relay (here the
    # test, standing in for it) delivers what the job moved and BPJS refuses it.
    tenang = await start_tenang(paced(bpjs_ui_config(tmp_path, bpjs_sim), 1.0),
                                relay_enabled=False)
    older, newer = [await submit(http, tenang.gateway_url, f'{{"kodebooking": "KB-T{i}"}}')
                    for i in range(2)]
    for request_id in (older, newer):
        await settle(tenang.backend, request_id, Status.DEAD)
    b = browsers(tenang.admin_url)
    assert await b.login("opa") == 303
    # No status filter: the job walks dead, then failed, then held requests.
    status, _, resp = await b.post("/bulk", {"expected": "2"})
    assert status == 303 and resp.headers["Location"] == "/bulk/1"

    async def newer_moved() -> bool:
        stored = await tenang.backend.log.get(newer)
        return stored is not None and stored.status is Status.PENDING

    await wait_until(newer_moved, what="the job's first batch")
    [claimed] = await tenang.backend.queue.claim_due("antrean", time.time() + 3600, 10, "relay",
                                                     time.time() + 60)
    assert claimed.id == newer
    await tenang.backend.queue.complete_attempt(newer, "relay", None, Transition(
        Status.FAILED, "201 Data tidak valid"), time.time())
    jobs = tenang.backend.schedules

    async def finished() -> bool:
        record = await jobs.bulk_job(1)
        return record is not None and record.finished_at is not None

    await wait_until(finished, what="the job to finish")
    retries = [e.target for e in await tenang.backend.audit.audit_entries(limit=50)
               if e.action == "retry"]
    assert sorted(retries, key=str) == sorted([older, newer]), "each retried once"
    stored = await tenang.backend.log.get(newer)
    assert stored is not None and stored.status is Status.FAILED
