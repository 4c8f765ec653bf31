"""Retention as a service: the purge walks every batch (rows, then bodies), a dry run
changes nothing, each run is audited, a purged request cannot be retried, and the daily
job fires at run_at WIB by the injected clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from proxy.bpjs.service_day import WIB
from proxy.config import parse_config
from proxy.config_ops import RetentionConfig
from proxy.lifecycle import BodyPurged, InvalidTransition, Status, Transition, operator_retry
from proxy.ops.operations import Operations
from proxy.ops.retention import DAY_S, Purger, RetentionJob, next_run_at
from proxy.store.backend import Backend
from proxy.store.memory import memory_backend
from proxy.store.records import PurgeKind
from tests.conftest import FakeClock, wait_until
from tests.store.test_contract import T0, put, req
from tests.unit.test_config import fails_naming, minimal

NOW = T0 + 400 * DAY_S


def retention(**keys: Any) -> RetentionConfig:
    return parse_config({**minimal(), "retention": keys}, Path("."), {}).retention


async def settled(store: Backend, i: float, status: Status, at: float) -> str:
    [r] = await put(store, req(i, lease_owner="w", lease_expires_at=at + 60))
    await store.queue.complete_attempt(r.id, "w", None, Transition(status, "done"), at)
    return r.id


# --- configuration ---------------------------------------------------------------------


def test_unset_keeps_everything_forever() -> None:
    r = retention()
    assert (r.bodies_after_days, r.rows_after_days, r.enabled) == (None, None, False)
    assert (r.run_at, r.batch_size) == ("02:00", 500)


def test_either_key_alone_turns_it_on() -> None:
    assert retention(bodies_after_days=30).enabled
    assert retention(rows_after_days=365).enabled


@pytest.mark.parametrize(("keys", "key"), [
    ({"bodies_after_days": 0}, "retention.bodies_after_days"),
    ({"rows_after_days": -1}, "retention.rows_after_days"),
    ({"bodies_after_days": 1.5}, "retention.bodies_after_days"),
    ({"bodies_after_days": "30"}, "retention.bodies_after_days"),
    ({"bodies_after_days": 90, "rows_after_days": 30}, "retention.rows_after_days"),
    ({"run_at": "2am"}, "retention.run_at"),
    ({"run_at": "24:00"}, "retention.run_at"),
    ({"batch_size": 0}, "retention.batch_size"),
    ({"keep_days": 3}, "retention.keep_days"),
])
def test_bad_values_are_named(keys: dict[str, Any], key: str) -> None:
    with fails_naming(key):
        retention(**keys)


def test_rows_may_go_the_same_day_as_the_bodies() -> None:
    r = retention(bodies_after_days=30, rows_after_days=30, run_at="23:45")
    assert (r.rows_after_days, r.run_at_time.hour, r.run_at_time.minute) == (30, 23, 45)


# --- one run --------------------------------------------------------------------------


async def test_a_run_purges_old_bodies_then_old_rows_in_batches() -> None:
    store = memory_backend()
    config = retention(bodies_after_days=30, rows_after_days=365, batch_size=2)
    ancient = [await settled(store, i, Status.SUCCEEDED, T0 + i) for i in range(1, 6)]
    month_old = await settled(store, 10, Status.FAILED, NOW - 40 * DAY_S)
    fresh = await settled(store, 11, Status.SUCCEEDED, NOW - DAY_S)
    purger = Purger(store.retention, config, audit=store.audit, clock=lambda: NOW)

    dry = await purger.run(dry_run=True)
    assert dry.counts == {PurgeKind.BODIES: 6, PurgeKind.ROWS: 5}
    assert all([await store.log.get(i) for i in ancient])
    assert await store.audit.audit_entries() == [], "a dry run is not recorded"

    report = await purger.run()
    assert report.counts == dry.counts
    assert [await store.log.get(i) for i in ancient] == [None] * 5
    purged = await store.log.get(month_old)
    assert purged is not None and purged.body == b"" and purged.purged_at == NOW
    kept = await store.log.get(fresh)
    assert kept is not None and kept.body != b"" and kept.purged_at is None
    [entry] = await store.audit.audit_entries()
    assert (entry.actor, entry.action, entry.at) == ("retention", "purge", NOW)
    assert entry.detail is not None and "whole rows of 5 requests" in entry.detail
    assert report.lines() == [
        "bodies: purged bodies of 6 requests final before 2024-11-19 05:13 WIB",
        "rows: purged whole rows of 5 requests final before 2023-12-20 05:13 WIB"]


async def test_a_request_whose_body_is_purged_cannot_be_retried() -> None:
    store = memory_backend()
    request_id = await settled(store, 1, Status.DEAD, T0 + 1)
    await Purger(store.retention, retention(bodies_after_days=1), clock=lambda: NOW).run()
    ops = Operations(store.log, store.operator, store.audit, None, clock=lambda: NOW)

    with pytest.raises(BodyPurged, match="body was purged by retention") as caught:
        await ops.retry(request_id, "siti")
    assert isinstance(caught.value, InvalidTransition) and caught.value.status == 409
    got = await store.log.get(request_id)
    assert got is not None and got.status is Status.DEAD
    # Cancelling it is still allowed: nothing is sent.
    await ops.cancel(request_id, "siti")


def test_the_retry_rule_refuses_only_purged_retryable_requests() -> None:
    assert operator_retry(Status.FAILED, 5.0).status is Status.PENDING
    with pytest.raises(BodyPurged):
        operator_retry(Status.FAILED, 5.0, body_purged=True)
    with pytest.raises(InvalidTransition):
        operator_retry(Status.SUCCEEDED, 5.0, body_purged=True)


# --- the daily job ----------------------------------------------------------------------


def wib(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=WIB).timestamp()


def test_the_next_run_is_the_next_run_at_in_wib() -> None:
    config = retention(bodies_after_days=30, run_at="02:00")
    assert next_run_at(config, wib("2026-03-01 01:59")) == wib("2026-03-01 02:00")
    assert next_run_at(config, wib("2026-03-01 02:00")) == wib("2026-03-02 02:00")
    assert next_run_at(config, wib("2026-03-01 23:00")) == wib("2026-03-02 02:00")


async def test_the_daily_job_runs_once_a_day_at_run_at() -> None:
    store = memory_backend()
    clock = FakeClock(wib("2026-03-01 01:00"))
    config = retention(bodies_after_days=30, run_at="02:00")
    old = await settled(store, 1, Status.SUCCEEDED, clock.now - 31 * DAY_S)
    job = RetentionJob(Purger(store.retention, config, audit=store.audit, clock=clock),
                       config, clock=clock, check_interval_s=0.01)
    job.start()
    try:
        await wait_until(lambda: job.checks > 3, what="the job looking at the clock")
        assert job.runs == 0
        got = await store.log.get(old)
        assert got is not None and got.purged_at is None, "not before 02:00"

        clock.now = wib("2026-03-01 02:00")
        await wait_until(lambda: job.runs == 1, what="the 02:00 run")
        got = await store.log.get(old)
        assert got is not None and got.purged_at == clock.now

        clock.now = wib("2026-03-01 14:00")
        checks = job.checks
        await wait_until(lambda: job.checks > checks + 3, what="more checks")
        assert job.runs == 1, "once a day"
        clock.now = wib("2026-03-02 02:00")
        await wait_until(lambda: job.runs == 2, what="the next day's run")
        assert len(await store.audit.audit_entries()) == 2
    finally:
        await job.stop()


async def test_no_job_runs_without_retention() -> None:
    store = memory_backend()
    job = RetentionJob(Purger(store.retention, retention()), retention())
    job.start()
    assert not job.started
    await job.stop()
