"""Outcome callbacks over real HTTP: a loopback receiver that fails the first two POSTs
gets the callback once, signed, after Tenang's retries; bed updates superseded by a newer
one are called back as cancelled, like any other final state."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import CallbacksConfig, Config
from proxy.delivery.callbacks import (
    CALLBACK_ID_HEADER,
    REQUEST_ID_HEADER,
    callback_for,
)
from proxy.lifecycle import Status, Transition
from proxy.signing import HEADER as SIGNATURE_HEADER
from proxy.signing import verify
from tests.bpjs_support import SECRET_ENV, Simrs, booking
from tests.conftest import make_config, wait_until
from tests.integration.notify_receivers import HttpReceiver, http_receiver

__all__ = ["http_receiver"]  # fixture used below

CALLBACK_SECRET = "callback-s3cret"
FAST = CallbacksConfig(max_attempts=5, initial_delay_s=0.05, max_delay_s=0.1, timeout_s=2.0,
                       poll_interval_s=0.02, batch=4)


def config(tmp_path: Path, sim: RunningSimulator, receiver: HttpReceiver,
           service: str = "antrean", prefix: str = "/antreanrs") -> Config:
    cfg = make_config(tmp_path, sim.url, name=service, prefix=prefix,
                      target=sim.url + prefix, preset=service, cons_id=sim.cons_id,
                      secret_env=SECRET_ENV, callback_url=receiver.url + "/tenang/outcome",
                      callback_secret_env="TENANG_TEST_CALLBACK_SECRET",
                      env={SECRET_ENV: sim.secret,
                           "TENANG_TEST_CALLBACK_SECRET": CALLBACK_SECRET})
    return dataclasses.replace(cfg, callbacks=FAST)


async def submit(http: aiohttp.ClientSession, sim: RunningSimulator, tenang: Tenang,
                 kode: str) -> str:
    async with http.post(tenang.gateway_url + "/antreanrs/antrean/add",
                         data=json.dumps(booking(kode)).encode(),
                         headers=sim.signed_headers("antrean", method="POST")) as resp:
        assert resp.status == 202
        return resp.headers["X-Tenang-Request-Id"]


async def wait_delivered(tenang: Tenang, receiver: HttpReceiver, request_id: str) -> None:
    """Until the receiver accepted the callback of ``request_id`` and the outbox holds
    nothing more to send (the delivery is recorded)."""
    async def delivered() -> bool:
        accepted = not receiver.fail_next and bool(receiver.posts) and \
            receiver.posts[-1]["headers"][REQUEST_ID_HEADER] == request_id
        return accepted and await tenang.backend.outbox.next_callback_at() is None

    await wait_until(delivered, what=f"the callback of {request_id} to be delivered")


def check_arrived_once(receiver: HttpReceiver, request_id: str, tries: int) -> dict[str, Any]:
    """Every try carried the same signed callback; only the last one was accepted."""
    assert len(receiver.posts) == tries
    callback_ids = {p["headers"][CALLBACK_ID_HEADER] for p in receiver.posts}
    assert len(callback_ids) == 1 and len({p["body"] for p in receiver.posts}) == 1
    accepted = receiver.posts[-1]
    assert accepted["path"] == "/tenang/outcome"
    assert accepted["headers"][REQUEST_ID_HEADER] == request_id
    assert accepted["headers"]["Content-Type"] == "application/json"
    assert verify(CALLBACK_SECRET, accepted["headers"][SIGNATURE_HEADER],
                            accepted["body"], now=time.time())
    doc: dict[str, Any] = accepted["json"]
    return doc


async def test_callback_arrives_once_signed_after_two_failures(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    http_receiver.fail_next = [500, 503]
    cfg = config(tmp_path, bpjs_sim, http_receiver)
    # No relay: the request stays pending until the (simulated) operator cancels it.
    tenang: Tenang = await start_tenang(cfg, relay_enabled=False)
    assert tenang.callbacks is not None
    tenang.callbacks.start()
    request_id = await submit(http, bpjs_sim, tenang, "KB-CALLBACK")
    request = await tenang.backend.log.get(request_id)
    assert request is not None
    # What the operator cancel path does: the callback is queued with the transition.
    now = time.time()
    transition = Transition(Status.CANCELLED, "cancelled by operator")
    await tenang.backend.operator.transition(
        request_id, Status.PENDING, transition, now,
        callback=callback_for(cfg.upstreams[0], request, transition, None, now))
    tenang.callbacks.wake()

    await wait_delivered(tenang, http_receiver, request_id)
    doc = check_arrived_once(http_receiver, request_id, tries=3)
    assert (doc["id"], doc["status"], doc["reason"], doc["result"]) == (
        request_id, "cancelled", "cancelled by operator", None)
    assert await tenang.callbacks.drain() == 0  # nothing left to send again


async def test_relay_success_is_called_back_with_the_bpjs_answer(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    http_receiver.fail_next = [502]
    tenang: Tenang = await start_tenang(config(tmp_path, bpjs_sim, http_receiver))
    request_id = await submit(http, bpjs_sim, tenang, "KB-CALLBACK-RELAY")
    await wait_delivered(tenang, http_receiver, request_id)
    doc = check_arrived_once(http_receiver, request_id, tries=2)
    assert (doc["status"], doc["attempts"], doc["endpoint"]) == ("succeeded", 1, "antrean.add")
    assert doc["result"]["metadata"]["code"] == 200


async def test_superseded_bed_updates_are_called_back_as_cancelled(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    await bpjs_sim.set_mode("down", aplicare_autocreate=True)
    tenang: Tenang = await start_tenang(
        config(tmp_path, bpjs_sim, http_receiver, "aplicare", "/aplicaresws"))
    simrs = Simrs(http, bpjs_sim, tenang, "aplicare")
    ids = [await simrs.send("POST", "/aplicaresws/rest/bed/update/0301R001",
                            {"kodekelas": "VIP", "koderuang": "R01", "namaruang": "Mawar",
                             "kapasitas": 10, "tersedia": n, "tersediapria": 0,
                             "tersediawanita": 0, "tersediapriawanita": n})
           for n in range(3)]
    await bpjs_sim.set_mode("up")

    async def all_called_back() -> bool:
        return len(http_receiver.posts) >= len(ids)

    await wait_until(all_called_back, what="a callback for every bed update")
    outcomes = {p["json"]["id"]: (p["json"]["status"], p["json"]["reason"])
                for p in http_receiver.posts}
    assert len(http_receiver.posts) == len(outcomes) == 3
    assert outcomes[ids[-1]][0] == "succeeded"
    for n, old in enumerate(ids[:-1]):
        status, reason = outcomes[old]
        # Named: whichever newer update was the newest when the relay looked.
        prefix, _, newer = reason.rpartition(": ")
        assert (status, prefix) == ("cancelled", "superseded by a newer update for the "
                                                 "same thing")
        assert newer in ids[n + 1:]


async def test_a_final_outcome_is_called_back_without_waiting_for_the_poll(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    # An hour between looks at the store: only the relay's report of the final state
    # (Observer.finished) can get the callback out within wait_until's 10 s.
    cfg = config(tmp_path, bpjs_sim, http_receiver)
    cfg = dataclasses.replace(cfg, callbacks=dataclasses.replace(FAST, poll_interval_s=3600.0))
    tenang: Tenang = await start_tenang(cfg)
    request_id = await submit(http, bpjs_sim, tenang, "KB-CALLBACK-WAKE")
    await wait_delivered(tenang, http_receiver, request_id)
    doc = check_arrived_once(http_receiver, request_id, tries=1)
    assert doc["status"] == "succeeded"
