"""The relay on the in-memory store with a fake clock: schedules are exact, nothing is
sent early, and a dead worker's lease is taken over and recorded as interrupted."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy import lifecycle
from proxy.app import build_breakers
from proxy.bpjs.simulator.client import DEFAULT_USER_KEY
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from proxy.delivery.attempt import FINISH_RETRY_MAX_S, Deliverer
from proxy.delivery.relay import Relay
from proxy.ids import new_request_id
from proxy.lifecycle import Status, Verdict
from proxy.policies.breaker import BreakerState
from proxy.store.backend import Backend
from proxy.store.errors import StoreUnavailable
from proxy.store.memory import memory_backend
from proxy.store.memory.queue import MemoryQueue
from proxy.store.memory.state import MemoryState
from proxy.store.records import NewRequest, StoredRequest
from tests.bpjs_support import OUTAGE, applied, booking, sep_insert
from tests.conftest import FakeClock, make_config, wait_until
from tests.store_support import bed_update, enqueue, memory_with_queue

T0 = 1_800_000_000.0
# What a SIMRS's stored request carries for BPJS (the relay signs each attempt itself).
HEADERS = (("Content-Type", "application/json"), ("user_key", DEFAULT_USER_KEY))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def relay_for(config: Config, store: Backend, session: aiohttp.ClientSession,
              clock: FakeClock, owner: str = "worker-a") -> Relay:
    return Relay(config, store.queue, session, build_breakers(config), clock=clock, owner=owner)


async def enqueue_booking(store: Backend, key: str, at: float) -> str:
    rid = new_request_id(at)
    await enqueue(store.intake, NewRequest(
        id=rid, upstream="antrean", method="POST", path="/antreanrs/antrean/add", query="",
        headers=HEADERS,
        body=json.dumps(booking(key)).encode(), received_at=at))
    return rid


def config_for(tmp_path: Path, sim: RunningSimulator) -> Config:
    return make_config(tmp_path, sim.url, retry={
        "initial_delay_s": 10.0, "max_delay_s": 60.0, "max_age_s": 3600.0, "jitter": "none"},
        breaker={"fail_max": 100})


async def test_transient_failure_is_scheduled_exactly_and_not_sent_early(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    rid = await enqueue_booking(store, "KB1", T0)
    await bpjs_sim.set_mode(**OUTAGE)

    await relay.drain()

    row = await store.log.get(rid)
    assert row is not None and row.status is Status.PENDING
    assert row.next_attempt_at == T0 + 10.0  # initial_delay_s, no jitter
    clock.now = T0 + 9.9
    await relay.drain()
    assert len(bpjs_sim.state.log) == 1  # not due yet: nothing sent

    await bpjs_sim.set_mode("up")
    clock.now = T0 + 10.0
    await relay.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.SUCCEEDED
    assert [a.verdict for a in await store.log.attempts(rid)] == [Verdict.TRANSIENT,
                                                                  Verdict.SUCCESS]


async def test_dead_workers_lease_is_taken_over_and_recorded_as_interrupted(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    config = config_for(tmp_path, bpjs_sim)
    rid = await enqueue_booking(store, "KB2", T0)
    # A worker that claimed the request and then died without a word.
    await store.queue.claim_due("antrean", T0, 10, "dead-worker", lease_until=T0 + 5)

    survivor = relay_for(config, store, session, clock, owner="worker-b")
    await survivor.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.IN_FLIGHT  # lease still running
    assert bpjs_sim.state.log == []

    clock.now = T0 + 6  # the lease has ended
    await survivor.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.PENDING
    assert [a.verdict for a in await store.log.attempts(rid)] == [Verdict.INTERRUPTED]

    clock.now = row.next_attempt_at or clock.now
    await survivor.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.SUCCEEDED
    assert [a.verdict for a in await store.log.attempts(rid)] == [Verdict.INTERRUPTED,
                                                                  Verdict.SUCCESS]
    assert [e["outcome"] for e in bpjs_sim.state.log] == ["ok"]


class BrokenFor(MemoryQueue):
    """Recording anything for one request fails with a bug."""

    broken = ""

    async def complete_attempt(self, request_id: str, *args: Any, **kwargs: Any) -> None:
        if request_id == self.broken:
            raise RuntimeError("a bug while settling this one")
        await super().complete_attempt(request_id, *args, **kwargs)


async def test_one_request_that_cannot_be_settled_does_not_block_the_other_take_overs(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, (store, queue) = FakeClock(T0), memory_with_queue(BrokenFor)
    first, second = [await enqueue_booking(store, f"KB-T{i}", T0 + i / 1000) for i in range(2)]
    queue.broken = first
    await store.queue.claim_due("antrean", T0 + 1, 10, "dead-worker", lease_until=T0 + 5)
    survivor = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock, "worker-b")
    clock.now = T0 + 6
    await survivor.drain()
    assert [a.verdict for a in await store.log.attempts(second)] == [Verdict.INTERRUPTED]
    row = await store.log.get(first)
    assert row is not None and row.status is Status.IN_FLIGHT  # taken over again later


async def test_request_past_max_age_dies_without_being_sent(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    rid = await enqueue_booking(store, "KB3", T0)
    clock.now = T0 + 3601

    await relay.drain()

    row = await store.log.get(rid)
    assert row is not None and row.status is Status.DEAD
    assert "max age" in (row.reason or "")
    assert await store.log.attempts(rid) == []
    assert bpjs_sim.state.log == []


async def test_drain_delivers_each_pending_request_once(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    ids = [await enqueue_booking(store, f"KB-{i}", T0 + i / 1000) for i in range(50)]
    clock.now = T0 + 1  # all received, all due

    await relay.drain()

    rows = [await store.log.get(i) for i in ids]
    assert all(r is not None and r.status is Status.SUCCEEDED for r in rows)
    assert sorted(applied(bpjs_sim).values()) == [1] * 50


class FlakyClaimStore(MemoryQueue):
    """A store whose first claim blows up with an unexpected (non-store) error."""

    def __init__(self, state: MemoryState) -> None:
        super().__init__(state)
        self.failures_left = 1

    async def claim_due(self, upstream: str, now: float, limit: int, owner: str,
                        lease_until: float, *, probe: bool = False) -> list[StoredRequest]:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("unexpected bug")
        return await super().claim_due(upstream, now, limit, owner, lease_until,
                                       probe=probe)


async def test_lane_survives_an_unexpected_error(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    store, queue = memory_with_queue(FlakyClaimStore)
    relay = Relay(config_for(tmp_path, bpjs_sim), store.queue, session,
                  build_breakers(config_for(tmp_path, bpjs_sim)))
    rid = await enqueue_booking(store, "KB-X", time.time())  # real clock here: due now
    relay.start()
    try:
        async def delivered() -> bool:
            row = await store.log.get(rid)
            return row is not None and row.status is Status.SUCCEEDED

        await wait_until(delivered, what="delivery after the lane's error")
    finally:
        await relay.stop()
    assert queue.failures_left == 0


async def test_a_failed_claim_hands_the_half_open_probe_back(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, (store, _) = FakeClock(T0), memory_with_queue(FlakyClaimStore)
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    lane, breaker = relay.lanes["antrean"], relay.lanes["antrean"].d.breaker
    breaker.force_open()
    breaker.release()  # half-open: the lane's next claim carries the one probe
    rid = await enqueue_booking(store, "KB-PROBE", T0)
    with pytest.raises(RuntimeError):
        await lane.step()
    assert not breaker.probing, "kept by the failed claim, no send would happen again"
    await relay.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.SUCCEEDED
    assert breaker.state is BreakerState.CLOSED


async def test_operator_retry_of_a_request_dead_of_old_age_sends_it(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    rid = await enqueue_booking(store, "KB-OLD", T0)
    clock.now = T0 + 3601  # past max_age_s
    await relay.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.DEAD and bpjs_sim.state.log == []

    await store.operator.transition(rid, Status.DEAD, lifecycle.operator_retry(row.status,
                                                                               clock.now),
                                    clock.now)
    await relay.drain()

    row = await store.log.get(rid)
    assert row is not None
    assert row.status is Status.SUCCEEDED, row.reason
    assert [e["outcome"] for e in bpjs_sim.state.log] == ["ok"]


async def test_own_live_delivery_past_its_lease_is_not_recorded_as_interrupted(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    lane = relay.lanes["antrean"]
    rid = await enqueue_booking(store, "KB-SLOW", T0)
    await bpjs_sim.set_mode(latency_ms=300)  # the send is still running when the lease runs out

    await lane.step()  # claims and starts the delivery
    await wait_until(lambda: len(bpjs_sim.state.log) == 1, what="the send to be under way")
    clock.now = T0 + lane.lease_s + 10  # the lease ends while the send is alive
    await lane.step()  # runs the lease take-over

    async def finished() -> bool:
        row = await store.log.get(rid)
        return row is not None and row.status is Status.SUCCEEDED

    await wait_until(finished, what="the live delivery to finish")
    assert [a.verdict for a in await store.log.attempts(rid)] == [Verdict.SUCCESS]
    assert [e["outcome"] for e in bpjs_sim.state.log] == ["ok"]


async def test_a_day_bound_request_is_not_sent_after_its_service_day(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    await bpjs_sim.set_mode(**OUTAGE)
    rid = new_request_id(T0)
    await enqueue(store.intake, NewRequest(
        id=rid, upstream="antrean", method="POST", path="/antreanrs/antrean/updatewaktu",
        query="", headers=HEADERS, body=b'{"kodebooking": "KB1", "taskid": 3}', received_at=T0,
        endpoint="antrean.updatewaktu", expires_at=T0 + 25.0))
    await relay.drain()  # first try fails; the retry is due at T0 + 10
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.PENDING
    clock.now = T0 + 10.0
    await relay.drain()  # fails again; the next retry (T0 + 30) would land after midnight
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.DEAD
    assert row.reason is not None and row.reason.startswith(lifecycle.DEADLINE_PASSED)
    assert len(bpjs_sim.state.log) == 2


async def test_a_request_claimed_after_its_deadline_ends_dead_unsent(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    rid = new_request_id(T0)
    await enqueue(store.intake, NewRequest(
        id=rid, upstream="antrean", method="POST", path="/antreanrs/antrean/add",
        query="", headers=HEADERS, body=b'{"kodebooking": "KB1"}', received_at=T0,
        expires_at=T0 + 5.0))
    clock.now = T0 + 5.0
    await relay.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.DEAD
    assert row.reason == f"{lifecycle.DEADLINE_PASSED}; not sent late"
    assert bpjs_sim.state.log == []


async def test_a_sep_insert_whose_day_is_over_is_held_for_a_person_who_may_send_it_late(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    cfg = make_config(tmp_path, bpjs_sim.url, name="vclaim", prefix="/vclaim-rest",
                      target=bpjs_sim.url + "/vclaim-rest", preset="vclaim")
    relay = Relay(cfg, store.queue, session, build_breakers(cfg), clock=clock, owner="w")
    rid = new_request_id(T0)
    await enqueue(store.intake, NewRequest(
        id=rid, upstream="vclaim", method="POST", path="/vclaim-rest/SEP/2.0/insert",
        query="", headers=HEADERS, body=json.dumps(sep_insert()).encode(), received_at=T0,
        expires_at=T0 + 5.0))
    clock.now = T0 + 6.0
    await relay.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.HELD
    assert row.reason is not None and "a person must decide" in row.reason
    assert bpjs_sim.state.log == []
    # The person decides to send it late: their retry lifts the day's deadline.
    await store.operator.transition(rid, Status.HELD, lifecycle.operator_retry(row.status,
                                                                               clock.now),
                                    clock.now)
    await relay.drain()
    row = await store.log.get(rid)
    assert [e["outcome"] for e in bpjs_sim.state.log] == ["ok"]
    assert row is not None and row.status is Status.SUCCEEDED


class FailsToRecordOnce(MemoryQueue):
    """The store is locked for the first write of a delivery's result."""

    failures_left = 1

    async def complete_attempt(self, *args: Any, **kwargs: Any) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise StoreUnavailable("database is locked")
        await super().complete_attempt(*args, **kwargs)


async def test_a_known_answer_is_kept_until_the_store_takes_it_and_never_resent(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, (store, _) = FakeClock(T0), memory_with_queue(FailsToRecordOnce)
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    rid = await enqueue_booking(store, "KB-LOCKED", T0)
    await relay.drain()  # sent and answered; the first write of the result fails
    assert [e["outcome"] for e in bpjs_sim.state.log] == ["ok"]
    clock.advance(relay.lanes["antrean"].lease_s + 1)  # past the lease: a take-over looks
    await relay.drain()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.SUCCEEDED
    assert [a.verdict for a in await store.log.attempts(rid)] == [Verdict.SUCCESS]
    assert len(bpjs_sim.state.log) == 1, "the applied write was not sent again"


class LockedLongerThanALease(MemoryQueue):
    """Each failing write of a result takes almost a whole lease, and another worker
    looks for expired leases meanwhile: it steals the request unless its lease is kept."""

    def __init__(self, state: MemoryState, clock: FakeClock, lease_s: float) -> None:
        super().__init__(state)
        self.clock, self.lease_s = clock, lease_s
        self.failures_left = 3
        self.stolen: list[str] = []

    async def complete_attempt(self, *args: Any, **kwargs: Any) -> None:
        if self.failures_left:
            self.failures_left -= 1
            self.clock.advance(self.lease_s - 1)
            now = self.clock()
            self.stolen += [r.id for r in await self.take_over_expired(
                "antrean", now, "other-worker", now + 1_000)]
            raise StoreUnavailable("database is locked")
        await super().complete_attempt(*args, **kwargs)


async def test_a_result_waiting_for_the_store_keeps_its_lease(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    cfg = config_for(tmp_path, bpjs_sim)
    clock = FakeClock(T0)
    lease_s = cfg.upstreams[0].timeout_s + cfg.relay.lease_margin_s
    store, queue = memory_with_queue(lambda s: LockedLongerThanALease(s, clock, lease_s))
    deliverer = Deliverer(cfg.upstreams[0], store.queue, session, build_breakers(cfg)["antrean"],
                          "w", clock, random.Random(1), lease_margin_s=cfg.relay.lease_margin_s)
    rid = await enqueue_booking(store, "KB-LOCKED", T0)
    [claimed] = await store.queue.claim_due("antrean", T0, 1, "w", T0 + deliverer.lease_s)

    assert await deliverer.finish(claimed, None, lifecycle.Transition(Status.SUCCEEDED, "ok"))
    assert queue.stolen == [], "a take-over found the lease of a live delivery expired"
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.SUCCEEDED and row.lease_owner is None


class LockedForGood(MemoryQueue):
    """The store stays locked for every write of a delivery's result."""

    def __init__(self, state: MemoryState) -> None:
        super().__init__(state)
        self.tries = 0

    async def complete_attempt(self, *args: Any, **kwargs: Any) -> None:
        self.tries += 1
        raise StoreUnavailable("database is locked")


async def test_a_stop_does_not_wait_forever_for_a_store_that_stays_locked(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    # The write of a known answer is shielded from the stop's cancellation, but its
    # retries end then: the lease expires and the request is settled as interrupted
    # after the restart, rather than Tenang never exiting.
    cfg = make_config(tmp_path, bpjs_sim.url, relay={"shutdown_grace_s": 0.05})
    store, queue = memory_with_queue(LockedForGood)
    relay = Relay(cfg, store.queue, session, build_breakers(cfg))
    rid = await enqueue_booking(store, "KB-LOCKED", time.time())
    relay.start()
    await wait_until(lambda: queue.tries >= 2, what="the result's write to be retried")
    async with asyncio.timeout(FINISH_RETRY_MAX_S):  # well within one longest backoff
        await relay.stop()
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.IN_FLIGHT
    assert [e["outcome"] for e in bpjs_sim.state.log] == ["ok"]


class LockedOnSupersede(MemoryQueue):
    async def live_coalesced(self, *args: Any, **kwargs: Any) -> list[StoredRequest]:
        raise StoreUnavailable("database is locked")


async def test_an_older_pending_update_superseded_before_a_send_gets_its_callback(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, name="aplicare", prefix="/aplicare",
                      target=bpjs_sim.url + "/aplicaresws", preset="aplicare",
                      callback_url="http://127.0.0.1:9/outcome")
    state = MemoryState()
    clock, store = FakeClock(T0), memory_backend(state)
    ids = [new_request_id(T0 + n) for n in range(3)]
    for n, rid in enumerate(ids):
        await enqueue(store.intake, bed_update(rid, T0 + n, n))
    [oldest] = await store.queue.claim_due("aplicare", T0 + 5, 1, "w", T0 + 60)
    breaker = build_breakers(cfg)["aplicare"]
    permit = breaker.try_acquire()
    assert permit is not None
    seen = Recorder()
    deliverer = Deliverer(cfg.upstreams[0], store.queue, session, breaker, "w", clock,
                          random.Random(1), observer=seen)
    await deliverer.deliver(oldest, permit)

    assert bpjs_sim.state.log == [], "a superseded update was sent"
    # Reported like any final outcome: out of backpressure's count and into the log.
    cancelled = [(rid, st) for rid, st, _ in seen.outcomes if rid != ids[0]]
    assert cancelled == [(ids[1], Status.CANCELLED)]
    for rid in ids[:2]:
        row = await store.log.get(rid)
        assert row is not None and row.status is Status.CANCELLED
        assert row.reason == f"{lifecycle.SUPERSEDED}{ids[2]}"
        [cb] = [cb for cb in state.callbacks.values() if cb.request_id == rid]
        assert b'"status":"cancelled"' in cb.payload and ids[2].encode() in cb.payload
    newest = await store.log.get(ids[2])
    assert newest is not None and newest.status is Status.PENDING


async def test_a_store_error_before_sending_hands_the_half_open_probe_back(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, name="aplicare", prefix="/aplicare",
                      target=bpjs_sim.url + "/aplicaresws", preset="aplicare")
    clock, (store, _) = FakeClock(T0), memory_with_queue(LockedOnSupersede)
    breaker = build_breakers(cfg)["aplicare"]
    breaker.force_open()
    breaker.release()  # after an outage: half-open, one probe allowed
    await enqueue(store.intake, bed_update(new_request_id(T0), T0, 3))
    [claimed] = await store.queue.claim_due("aplicare", T0, 1, "w", T0 + 60)
    permit = breaker.try_acquire()
    assert permit is not None and permit.probe
    deliverer = Deliverer(cfg.upstreams[0], store.queue, session, breaker, "w", clock,
                          random.Random(1))
    await deliverer.deliver(claimed, permit)  # the claim is handed back, unsent
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire() is not None, "the probe was lost: nothing would be sent"
    assert bpjs_sim.state.log == []


class LockedOnceOnSupersede(MemoryQueue):
    failures_left = 1

    async def live_coalesced(self, *args: Any, **kwargs: Any) -> list[StoredRequest]:
        if self.failures_left:
            self.failures_left -= 1
            raise StoreUnavailable("database is locked")
        return await super().live_coalesced(*args, **kwargs)


async def test_a_store_error_before_sending_records_no_send_that_never_happened(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, name="aplicare", prefix="/aplicare",
                      target=bpjs_sim.url + "/aplicaresws", preset="aplicare")
    clock, (store, _) = FakeClock(T0), memory_with_queue(LockedOnceOnSupersede)
    relay = Relay(cfg, store.queue, session, build_breakers(cfg), clock=clock, owner="w")
    rid = new_request_id(T0)
    await enqueue(store.intake, NewRequest(
        id=rid, upstream="aplicare", method="POST",
        path="/aplicare/rest/bed/update/0101R001", query="", headers=HEADERS,
        body=b'{"kodekelas": "VIP", "koderuang": "R1", "kapasitas": 10, "tersedia": 3}',
        received_at=T0, coalesce_key="aplicare:room-r1"))
    await bpjs_sim.set_mode(aplicare_autocreate=True)  # the room needs no bed/create

    await relay.drain()  # claimed; the store fails before the send
    row = await store.log.get(rid)
    assert row is not None and row.status is Status.PENDING and row.lease_owner is None
    assert await store.log.attempts(rid) == [] and bpjs_sim.state.log == []
    assert row.reason is not None and row.reason.startswith("not sent")

    clock.advance(relay.lanes["aplicare"].lease_s + 10)  # a lease later: a take-over looks
    await relay.drain()
    assert [a.verdict for a in await store.log.attempts(rid)] == [Verdict.SUCCESS], (
        "a send that never happened was recorded as interrupted")
    assert len(bpjs_sim.state.log) == 1


class Recorder:
    """An observer that remembers what the relay reported."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, Status, str]] = []  # (request id, status, reason)

    def accepted(self, upstream: str, endpoint: str | None, seconds: float) -> None:
        return None

    def attempt(self, upstream: str, verdict: Verdict, seconds: float) -> None:
        return None

    def read(self, upstream: str, endpoint: str, answer: str, seconds: float) -> None:
        return None

    def reconciled(self, upstream: str, settlement: str) -> None:
        return None

    def refused(self, upstream: str, reason: str) -> None:
        return None

    def finished(self, upstream: str, request_id: str, status: Status, reason: str) -> None:
        self.outcomes.append((request_id, status, reason))


async def test_requests_held_behind_a_failed_one_are_reported_like_any_outcome(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store, seen = FakeClock(T0), memory_backend(), Recorder()
    cfg = config_for(tmp_path, bpjs_sim)
    relay = Relay(cfg, store.queue, session, build_breakers(cfg), clock=clock, owner="w",
                  observer=seen)
    await bpjs_sim.fault("antrean/updatewaktu", "reject")
    ids = []
    for n in (1, 2):
        rid = new_request_id(T0 + n)
        await enqueue(store.intake, NewRequest(
            id=rid, upstream="antrean", method="POST", path="/antreanrs/antrean/updatewaktu",
            query="", headers=HEADERS, body=b'{"kodebooking": "KB1"}', received_at=T0 + n,
            ordering_key="antrean:kodebooking=KB1"))
        ids.append(rid)
    clock.now = T0 + 5
    await relay.drain()
    clock.now = T0 + 10  # the next housekeeping tick holds the later one
    await relay.drain()
    held = [(rid, reason) for rid, status, reason in seen.outcomes if status is Status.HELD]
    assert held == [(ids[1], f"{lifecycle.HELD_BEHIND}failed ({ids[0]})")]


async def test_the_half_open_probe_is_a_request_without_own_faults(
        tmp_path: Path, bpjs_sim: RunningSimulator, session: aiohttp.ClientSession) -> None:
    clock, store = FakeClock(T0), memory_backend()
    relay = relay_for(config_for(tmp_path, bpjs_sim), store, session, clock)
    refused = await enqueue_booking(store, "KB-REFUSED", T0)
    await store.queue.claim_due("antrean", T0, 1, "worker-a", T0 + 30)
    await store.queue.complete_attempt(refused, "worker-a", None, lifecycle.Transition(
        Status.PENDING, "refused for its own user_key", next_attempt_at=T0 + 1,
        own_faults=1), T0 + 1)
    clean = await enqueue_booking(store, "KB-CLEAN", T0 + 2)  # due after the refused one
    breaker = relay.lanes["antrean"].d.breaker
    breaker.force_open()
    breaker.release()  # half-open: one probe
    clock.now = T0 + 5
    await relay.lanes["antrean"].step()
    await wait_until(lambda: len(bpjs_sim.state.log) >= 1, what="the probe")
    assert bpjs_sim.state.log[0]["body"]["kodebooking"] == "KB-CLEAN"
    await relay.drain()
    rows = [await store.log.get(r) for r in (refused, clean)]
    assert [r.status if r else None for r in rows] == [Status.SUCCEEDED, Status.SUCCEEDED]
