"""Outcome callbacks: payload, backoff schedule and the sender, on a fake clock
with an in-memory store and a fake HTTP poster (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.config import CallbacksConfig, Config, parse_config
from proxy.delivery.callback_sender import CallbackSender
from proxy.delivery.callbacks import (
    CALLBACK_ID_HEADER,
    REQUEST_ID_HEADER,
    callback_for,
    next_attempt_at,
    retry_delay_s,
)
from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition
from proxy.shapes import iso_utc
from proxy.signing import HEADER as SIGNATURE_HEADER
from proxy.signing import verify
from proxy.store.backend import Backend
from proxy.store.memory import memory_backend
from proxy.store.memory.state import MemoryState
from proxy.store.records import CallbackStatus, NewRequest, StoredCallback, StoredRequest
from tests.conftest import FakeClock, wait_until
from tests.store_support import enqueue

T0 = 1_750_000_000.0
URL = "http://127.0.0.1:9/hook"
SECRET = "cb-s3cret"


def config(*, secret: bool = True, callback_url: str = URL, **callbacks: Any) -> Config:
    up: dict[str, Any] = {"name": "antrean", "prefix": "/antreanrs",
                          "target": "http://127.0.0.1:9/antreanrs", "preset": "antrean",
                          "cons_id": "12345", "secret_env": "BPJS_SECRET",
                          "callback_url": callback_url}
    if secret:
        up["callback_secret_env"] = "CB_SECRET"
    raw = {"upstreams": [up], "callbacks": {"max_attempts": 4, "initial_delay_s": 5.0,
                                            "max_delay_s": 12.0, **callbacks}}
    return parse_config(raw, Path("."), {"CB_SECRET": SECRET, "BPJS_SECRET": "bpjs-s3cret"})


REQUEST_ID = new_request_id(T0)


def stored(status: Status = Status.IN_FLIGHT, attempts: int = 2) -> StoredRequest:
    return StoredRequest(
        id=REQUEST_ID, upstream="antrean", method="POST",
        path="/antreanrs/antrean/add", query="", headers=(("user_key", "uk-secret"),),
        body=b'{"kodebooking":"KB1"}', received_at=T0, status=status, attempts=attempts,
        next_attempt_at=None, updated_at=T0, reason=None, endpoint="antrean.add")


# --- payload --------------------------------------------------------------------------------


def test_payload_of_a_success_carries_the_plain_bpjs_answer() -> None:
    answer = {"metadata": {"code": 200, "message": "Ok."}, "response": None}
    cb = callback_for(config().upstreams[0], stored(), Transition(Status.SUCCEEDED, "ok"),
                      json.dumps(answer).encode(), T0 + 61.5, attempts=3)
    assert cb is not None and cb.url == URL
    doc = json.loads(cb.payload)
    assert doc == {
        "id": stored().id, "upstream": "antrean", "endpoint": "antrean.add",
        "method": "POST", "path": "/antreanrs/antrean/add", "status": "succeeded",
        "reason": "ok", "received_at": iso_utc(T0), "finished_at": iso_utc(T0 + 61.5),
        "attempts": 3, "result": answer,
    }
    assert doc["finished_at"].endswith("Z") and "T" in doc["finished_at"]
    assert b"uk-secret" not in cb.payload and b"KB1" not in cb.payload


@pytest.mark.parametrize("body", [None, b"<html>502</html>", b"", b'{"no": "envelope"}'])
def test_result_is_null_without_a_bpjs_envelope(body: bytes | None) -> None:
    cb = callback_for(config().upstreams[0], stored(), Transition(Status.DEAD, "gave up"),
                      body, T0)
    assert cb is not None
    doc = json.loads(cb.payload)
    assert doc["result"] is None
    assert doc["attempts"] == 2  # no attempt passed: the request's own count


@pytest.mark.parametrize("status", [Status.PENDING, Status.HELD, Status.IN_FLIGHT])
def test_no_callback_for_a_state_that_is_not_final(status: Status) -> None:
    assert callback_for(config().upstreams[0], stored(), Transition(status, "later"), None,
                        T0) is None


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.FAILED, Status.DEAD,
                                    Status.CANCELLED])
def test_no_callback_without_a_url(status: Status) -> None:
    up = config(callback_url="").upstreams[0]
    assert callback_for(up, stored(), Transition(status, "x"), None, T0) is None


# --- schedule -------------------------------------------------------------------------------


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    settings = CallbacksConfig(max_attempts=10, initial_delay_s=5.0, max_delay_s=30.0)
    assert [retry_delay_s(n, settings) for n in range(1, 7)] == [5, 10, 20, 30, 30, 30]


def test_no_next_attempt_after_the_last_one() -> None:
    settings = CallbacksConfig(max_attempts=3, initial_delay_s=1.0, max_delay_s=60.0)
    assert next_attempt_at(1, settings, T0) == T0 + 1
    assert next_attempt_at(2, settings, T0) == T0 + 2
    assert next_attempt_at(3, settings, T0) is None


# --- the sender -----------------------------------------------------------------------------


class Receiver:
    """A fake POST: answers from ``statuses`` in turn (an exception is raised), then 200."""

    def __init__(self, *statuses: int | BaseException) -> None:
        self.statuses = list(statuses)
        self.calls: list[tuple[str, bytes, dict[str, str], float]] = []

    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str],
                       timeout_s: float) -> int:
        self.calls.append((url, body, dict(headers), timeout_s))
        outcome = self.statuses.pop(0) if self.statuses else 200
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def queued(store: Backend, cfg: Config, at: float = T0) -> StoredRequest:
    """A request that ended cancelled at ``at``, with its callback queued."""
    request_id = new_request_id(at)
    await enqueue(store.intake, NewRequest(
        id=request_id, upstream="antrean", method="POST", path="/antreanrs/x",
        query="", headers=(), body=b"{}", received_at=at))
    request = await store.log.get(request_id)
    assert request is not None
    transition = Transition(Status.CANCELLED, "cancelled by operator")
    await store.operator.transition(request.id, Status.PENDING, transition, at,
                                    callback=callback_for(cfg.upstreams[0], request,
                                                          transition, None, at))
    return request


async def only_callback(store: Backend, request_id: str) -> StoredCallback:
    """The one callback queued for ``request_id``, as the in-memory backend holds it (the
    outbox's verbs show a callback only while it is claimable)."""
    state = store.engine
    assert isinstance(state, MemoryState)
    [cb] = [cb for cb in state.callbacks.values() if cb.request_id == request_id]
    return cb


@pytest.fixture
async def store() -> Backend:
    s = memory_backend()
    await s.open()
    return s


async def test_delivered_once_with_signed_headers(store: Backend) -> None:
    cfg, clock, receiver = config(), FakeClock(T0), Receiver()
    request = await queued(store, cfg)
    clock.now = T0 + 3
    sender = CallbackSender(cfg, store.outbox, clock=clock, post=receiver)
    assert await sender.drain() == 1
    [(url, body, headers, timeout_s)] = receiver.calls
    cb = await only_callback(store, request.id)
    assert (url, body, timeout_s) == (URL, cb.payload, cfg.callbacks.timeout_s)
    assert headers["Content-Type"] == "application/json"
    assert headers[REQUEST_ID_HEADER] == request.id
    assert headers[CALLBACK_ID_HEADER] == str(cb.id)
    assert headers[SIGNATURE_HEADER].startswith(f"t={int(T0 + 3)},v1=")
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=T0 + 3)
    assert (cb.status, cb.attempts, cb.last_error) == (CallbackStatus.DELIVERED, 1, None)
    assert await sender.drain() == 0  # nothing sent twice
    await sender.stop()


async def test_unsigned_without_a_secret(store: Backend) -> None:
    cfg, receiver = config(secret=False), Receiver()
    await queued(store, cfg)
    await CallbackSender(cfg, store.outbox, clock=FakeClock(T0), post=receiver).drain()
    [(_, _, headers, _)] = receiver.calls
    assert SIGNATURE_HEADER not in headers


async def test_retries_follow_the_backoff_schedule_then_die(store: Backend) -> None:
    cfg, clock = config(), FakeClock(T0)
    receiver = Receiver(503, 503, 503, 503, 503)
    request = await queued(store, cfg)
    sender = CallbackSender(cfg, store.outbox, clock=clock, post=receiver)
    waits = []
    for attempt in range(1, 4):
        assert await sender.drain() == 1
        cb = await only_callback(store, request.id)
        assert (cb.status, cb.attempts, cb.last_error) == (CallbackStatus.PENDING, attempt,
                                                           "HTTP 503")
        waits.append(cb.next_attempt_at - clock.now)
        clock.now = cb.next_attempt_at - 0.001
        assert await sender.drain() == 0  # not due a moment early
        clock.now = cb.next_attempt_at
    assert waits == [5.0, 10.0, 12.0]  # 5, doubled, capped at max_delay_s
    assert await sender.drain() == 1  # the 4th and last allowed attempt
    cb = await only_callback(store, request.id)
    assert (cb.status, cb.attempts, cb.last_error) == (CallbackStatus.DEAD, 4, "HTTP 503")
    clock.now += 10_000
    assert await sender.drain() == 0
    assert len(receiver.calls) == 4


@pytest.mark.parametrize(("failure", "error"), [
    (aiohttp.ClientConnectionError("connection refused"),
     "ClientConnectionError: connection refused"),
    (TimeoutError(), "no answer within 10 s"),
    (302, "HTTP 302 (redirects are not followed)"),
    (RuntimeError("bug in a poster"), "unexpected error: RuntimeError('bug in a poster')"),
])
async def test_a_failed_try_is_recorded_and_retried(store: Backend,
                                                    failure: int | BaseException,
                                                    error: str) -> None:
    cfg, clock = config(), FakeClock(T0)
    request = await queued(store, cfg)
    sender = CallbackSender(cfg, store.outbox, clock=clock, post=Receiver(failure))
    await sender.drain()
    cb = await only_callback(store, request.id)
    assert (cb.status, cb.last_error, cb.next_attempt_at) == (CallbackStatus.PENDING, error,
                                                              T0 + 5)
    clock.now = T0 + 5
    await sender.drain()
    assert (await only_callback(store, request.id)).status is CallbackStatus.DELIVERED


async def test_background_task_sends_and_stop_is_idempotent(store: Backend) -> None:
    cfg, receiver = config(poll_interval_s=0.01), Receiver()
    sender = CallbackSender(cfg, store.outbox, post=receiver)
    sender.start()
    sender.start()
    request = await queued(store, cfg, at=T0)  # long due on the real clock
    sender.wake()

    async def delivered() -> bool:
        return (await only_callback(store, request.id)).status is CallbackStatus.DELIVERED

    await wait_until(delivered, what="the callback to be delivered")
    await sender.stop()
    await sender.stop()
    assert len(receiver.calls) == 1


async def test_sender_survives_a_store_error(store: Backend,
                                             caplog: pytest.LogCaptureFixture) -> None:
    cfg, receiver = config(poll_interval_s=0.01), Receiver()
    sender = CallbackSender(cfg, store.outbox, post=receiver)
    await store.close()  # every verb now raises StoreUnavailable
    sender.start()
    await wait_until(lambda: "callback sender: store error" in caplog.text,
                     what="the sender to meet the store error")
    await store.open()
    request = await queued(store, cfg)

    async def delivered() -> bool:
        return (await only_callback(store, request.id)).status is CallbackStatus.DELIVERED

    await wait_until(delivered, what="delivery once the store is back")
    await sender.stop()
