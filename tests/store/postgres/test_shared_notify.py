"""Admin notifications with two instances on one PostgreSQL store: both watch the same
outage, one page goes out per incident (webhook over loopback HTTP), and when the
instance that paged is gone the other pages the rest (its recovery, the next outage)."""

from __future__ import annotations

import dataclasses

from proxy.config_ops import NotifyConfig, WebhookConfig
from proxy.lifecycle import Status
from proxy.observe.notify import Notifier
from proxy.observe.notify_channels import build_channels
from proxy.policies.breaker import BreakerState
from proxy.store.postgres.database import Database
from proxy.store.postgres.notices import PostgresNotices
from tests.conftest import FakeClock
from tests.integration.notify_receivers import HttpReceiver, http_receiver

__all__ = ["http_receiver"]  # fixture used below

UP = "antrean"
CONFIG = NotifyConfig(breaker_open_after_s=60.0, window_s=600.0, retry_attempts=1)


def notifier(db: Database, receiver: HttpReceiver, clock: FakeClock) -> Notifier:
    config = dataclasses.replace(CONFIG, webhook=WebhookConfig(url=f"{receiver.url}/hook"))
    n = Notifier(config, build_channels(config), clock=clock, claims=PostgresNotices(db))
    n.start(periodic=False)
    return n


def events(receiver: HttpReceiver) -> list[str]:
    return [str(post["json"]["event"]) for post in receiver.posts]


async def test_two_instances_page_once_per_incident_and_the_survivor_carries_on(
        dbs: tuple[Database, Database], http_receiver: HttpReceiver) -> None:
    clock = FakeClock()
    a, b = notifier(dbs[0], http_receiver, clock), notifier(dbs[1], http_receiver, clock)
    try:
        for n in (a, b):  # both instances see the circuit open
            n.breaker_changed(UP, BreakerState.CLOSED, BreakerState.OPEN)
        clock.advance(CONFIG.breaker_open_after_s)
        for n in (a, b):
            await n.check()
            await n.flush()
        assert events(http_receiver) == ["breaker_open"]

        await a.stop()  # the instance that paged is gone
        b.breaker_changed(UP, BreakerState.OPEN, BreakerState.CLOSED)
        await b.flush()
        assert events(http_receiver) == ["breaker_open", "breaker_closed"]

        # The next outage, past the window: paged by the survivor.
        clock.advance(CONFIG.window_s)
        b.breaker_changed(UP, BreakerState.CLOSED, BreakerState.OPEN)
        clock.advance(CONFIG.breaker_open_after_s)
        await b.check()
        await b.flush()
        assert events(http_receiver) == ["breaker_open", "breaker_closed", "breaker_open"]
    finally:
        await a.stop()
        await b.stop()


async def test_a_dead_batch_that_loses_the_window_is_counted_into_the_next_page(
        dbs: tuple[Database, Database], http_receiver: HttpReceiver) -> None:
    clock = FakeClock()
    a, b = notifier(dbs[0], http_receiver, clock), notifier(dbs[1], http_receiver, clock)
    try:
        a.request_finished(UP, "r-a", Status.DEAD, "retry limit")
        await a.flush()
        b.request_finished(UP, "r-b", Status.DEAD, "retry limit")  # same window: held
        await b.flush()
        assert [p["json"]["request_ids"] for p in http_receiver.posts] == [["r-a"]]

        clock.advance(CONFIG.window_s)
        b.request_finished(UP, "r-b2", Status.DEAD, "retry limit")
        await b.flush()
        assert [p["json"]["request_ids"] for p in http_receiver.posts] == [
            ["r-a"], ["r-b", "r-b2"]]
        assert http_receiver.posts[1]["json"]["count"] == 2
    finally:
        await a.stop()
        await b.stop()
