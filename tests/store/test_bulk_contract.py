"""Bulk retry job verbs: one contract for every store backend (see conftest BACKENDS)."""

from __future__ import annotations

import dataclasses

from proxy.store.backend import Backend
from proxy.store.protocols import Schedules
from proxy.store.records import BulkJobRecord
from tests.store.test_contract import T0


def jobs(store: Backend) -> Schedules:
    return store.schedules


async def test_a_new_job_is_stored_unfinished_with_no_progress(store: Backend) -> None:
    first = await jobs(store).add_bulk_job("opa", '{"status": "dead"}', 12, T0)
    second = await jobs(store).add_bulk_job("adi", "{}", 0, T0 + 1)
    assert second.id > first.id
    assert first == BulkJobRecord(first.id, "opa", '{"status": "dead"}', 12, T0)
    assert await jobs(store).bulk_job(first.id) == first
    assert await jobs(store).bulk_job(second.id + 1) is None
    assert await jobs(store).unfinished_bulk_jobs() == [first, second]


async def test_progress_is_saved_and_a_finished_job_is_no_longer_resumed(
        store: Backend) -> None:
    job = await jobs(store).add_bulk_job("opa", "{}", 5, T0)
    moved = dataclasses.replace(job, retried=3, skipped=1, stage=1, cursor="01ABC")
    await jobs(store).save_bulk_job(moved)
    assert await jobs(store).bulk_job(job.id) == moved
    assert await jobs(store).unfinished_bulk_jobs() == [moved]
    done = dataclasses.replace(moved, cursor=None, stage=3, finished_at=T0 + 9,
                               error="store unavailable")
    await jobs(store).save_bulk_job(done)
    assert await jobs(store).bulk_job(job.id) == done
    assert await jobs(store).unfinished_bulk_jobs() == []


async def test_saving_never_changes_what_the_job_was_started_with(store: Backend) -> None:
    job = await jobs(store).add_bulk_job("opa", '{"upstream": "vclaim"}', 5, T0)
    await jobs(store).save_bulk_job(dataclasses.replace(
        job, actor="mallory", filter="{}", expected=999, started_at=0.0, retried=2))
    assert await jobs(store).bulk_job(job.id) == dataclasses.replace(job, retried=2)


async def test_a_job_is_leased_to_one_owner_until_its_lease_runs_out(store: Backend) -> None:
    job = await jobs(store).add_bulk_job("opa", "{}", 5, T0)
    assert await jobs(store).lease_bulk_job(job.id, "a", T0, T0 + 30)
    assert not await jobs(store).lease_bulk_job(job.id, "b", T0 + 29, T0 + 59)
    assert await jobs(store).lease_bulk_job(job.id, "a", T0 + 29, T0 + 59)  # renewed
    assert not await jobs(store).lease_bulk_job(job.id, "b", T0 + 58, T0 + 88)
    assert await jobs(store).lease_bulk_job(job.id, "b", T0 + 59, T0 + 89)  # ran out
    assert not await jobs(store).lease_bulk_job(job.id, "a", T0 + 60, T0 + 90)


async def test_a_lease_handed_back_is_free_at_once_and_a_finished_job_has_none(
        store: Backend) -> None:
    job = await jobs(store).add_bulk_job("opa", "{}", 5, T0)
    assert await jobs(store).lease_bulk_job(job.id, "a", T0, T0 + 30)
    assert await jobs(store).lease_bulk_job(job.id, "a", T0 + 1, T0 + 1)  # handed back
    assert await jobs(store).lease_bulk_job(job.id, "b", T0 + 1, T0 + 31)
    await jobs(store).save_bulk_job(dataclasses.replace(job, finished_at=T0 + 2))
    assert not await jobs(store).lease_bulk_job(job.id, "b", T0 + 2, T0 + 32)
    assert not await jobs(store).lease_bulk_job(job.id + 1, "b", T0 + 2, T0 + 32)
