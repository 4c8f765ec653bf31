"""The Notifier: queue, drop-oldest, retries with backoff, permanent errors, channels
independent of each other, and the periodic check reading the store summary."""

from __future__ import annotations

import aiohttp
import pytest

from proxy.config_ops import NotifyConfig
from proxy.lifecycle import Status
from proxy.observe.notify import Notifier
from proxy.observe.notify_channels import SendError
from proxy.observe.notify_rules import Message
from proxy.store.records import UpstreamSummary
from tests.conftest import FakeClock

T0 = 1_800_000_000.0
FAST = NotifyConfig(window_s=0.0, retry_attempts=3, retry_initial_delay_s=0.001,
                    retry_max_delay_s=0.002, oldest_pending_after_s=60.0, queue_size=3)


class FakeChannel:
    def __init__(self, name: str = "fake", failures: list[Exception] | None = None) -> None:
        self.name = name
        self.failures = failures or []
        self.tries = 0
        self.sent: list[Message] = []

    async def send(self, message: Message, session: aiohttp.ClientSession) -> None:
        self.tries += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


def dead(notifier: Notifier, n: int) -> None:
    for i in range(n):
        notifier.request_finished("antrean", f"r{i}", Status.DEAD, "retry limit")


async def notify_one_dead(*channels: FakeChannel) -> list[tuple[str, str]]:
    """One dead request through a started notifier; returns (channel, result) pairs."""
    results: list[tuple[str, str]] = []
    n = Notifier(FAST, list(channels), clock=FakeClock(T0),
                 on_result=lambda c, r: results.append((c, r)))
    n.start(periodic=False)
    try:
        dead(n, 1)
        await n.flush()
    finally:
        await n.stop()
    return results


async def test_transient_failures_are_retried_until_sent() -> None:
    channel = FakeChannel(failures=[SendError("boom"), SendError("again")])
    results = await notify_one_dead(channel)
    assert channel.tries == 3
    assert len(channel.sent) == 1
    assert results == [("fake", "sent")]


async def test_permanent_failure_is_not_retried_and_others_still_get_it() -> None:
    bad = FakeChannel("bad", failures=[SendError("HTTP 400", permanent=True)])
    good = FakeChannel("good")
    results = await notify_one_dead(bad, good)
    assert bad.tries == 1
    assert len(good.sent) == 1
    assert sorted(results) == [("bad", "failed"), ("good", "sent")]


async def test_gives_up_after_retry_attempts() -> None:
    channel = FakeChannel(failures=[SendError(str(i)) for i in range(10)])
    results = await notify_one_dead(channel)
    assert results == [("fake", "failed")]
    assert channel.tries == 3
    assert channel.sent == []


async def test_full_queue_drops_the_oldest_and_counts() -> None:
    channel = FakeChannel()
    results: list[tuple[str, str]] = []
    n = Notifier(FAST, [channel], clock=FakeClock(T0),
                 on_result=lambda c, r: results.append((c, r)))
    # Not started: nothing drains the queue of 3.
    for i in range(5):
        n.request_finished(f"up{i}", "r", Status.DEAD, "x")
    assert n.dropped == 2
    assert results == [("queue", "dropped")] * 2
    n.start(periodic=False)
    try:
        await n.flush()
    finally:
        await n.stop()
    assert [m.upstream for m in channel.sent] == ["up2", "up3", "up4"]


async def test_check_reads_the_oldest_pending_age_from_the_summary() -> None:
    clock = FakeClock(T0)

    async def summary() -> dict[str, UpstreamSummary]:
        return {"antrean": UpstreamSummary(counts={Status.PENDING: 3},
                                           oldest_pending_at=T0 - 61),
                "vclaim": UpstreamSummary()}

    channel = FakeChannel()
    n = Notifier(FAST, [channel], clock=clock, summary=summary)
    n.start(periodic=False)
    try:
        await n.check()
        await n.flush()
    finally:
        await n.stop()
    assert [(m.kind.value, m.upstream) for m in channel.sent] == [("backlog", "antrean")]


async def test_quiet_upstream_gets_no_alerts() -> None:
    channel = FakeChannel()
    n = Notifier(FAST, [channel], clock=FakeClock(T0), quiet=lambda up, now: up == "antrean")
    n.start(periodic=False)
    try:
        dead(n, 3)
        n.request_finished("vclaim", "v1", Status.DEAD, "x")
        await n.flush()
    finally:
        await n.stop()
    assert [m.upstream for m in channel.sent] == ["vclaim"]


async def test_stop_is_idempotent_and_flush_times_out_cleanly() -> None:
    n = Notifier(FAST, [], clock=FakeClock(T0))
    n.start(periodic=True)
    n.start(periodic=True)
    await n.stop()
    await n.stop()
    stalled = Notifier(FAST, [FakeChannel()], clock=FakeClock(T0))
    dead(stalled, 1)  # never started: nothing sends
    with pytest.raises(TimeoutError):
        await stalled.flush(timeout_s=0.05)


async def test_without_a_channel_the_store_is_never_read() -> None:
    reads = 0

    async def summary() -> dict[str, UpstreamSummary]:
        nonlocal reads
        reads += 1
        return {"antrean": UpstreamSummary(oldest_pending_at=T0 - 3600)}

    n = Notifier(FAST, [], clock=FakeClock(T0), summary=summary)
    n.start()
    try:
        assert [t.get_name() for t in n._tasks] == ["notify-sender"], "no periodic checker"
        await n.check()
        dead(n, 5)
        await n.flush()
    finally:
        await n.stop()
    assert reads == 0
    assert n.dropped == 0


async def test_with_a_channel_the_checker_runs() -> None:
    n = Notifier(FAST, [FakeChannel()], clock=FakeClock(T0))
    n.start()
    try:
        assert sorted(t.get_name() for t in n._tasks) == ["notify-checker", "notify-sender"]
    finally:
        await n.stop()
