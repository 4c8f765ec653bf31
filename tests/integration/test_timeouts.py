"""Configured upstream timeouts fire when configured, not at the next whole second
(aiohttp rounds deadlines of 5 s or more up unless told not to), over real HTTP to a
BPJS simulator that answers too late."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config_ops import WebhookConfig
from proxy.delivery.callback_sender import CallbackSender
from proxy.observe.notify_channels import SendError, WebhookChannel
from proxy.observe.notify_rules import Kind, Message
from proxy.store.memory import memory_backend
from tests.bpjs_support import Simrs, booking, bpjs_config
from tests.conftest import StartTenang, make_config

# What a user may see beyond the configured 5 s, besides how late the loop ran every
# timer due then (``loop_lag_at``, on a busy machine): the work after the timeout, not the
# up-to-1 s rounding.
MARGIN_S = 0.3


async def just_after_a_whole_second() -> None:
    """Start what is timed just after a whole second of the loop clock: rounding the
    deadline up to the next whole second would then add almost a full second, so a
    timeout that is not exact cannot pass by luck."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    loop.call_at(math.floor(loop.time()) + 1.01, started.set_result, None)
    await started


def loop_lag_at(due: float) -> asyncio.Future[float]:
    """How late this loop runs a plain timer due at loop time ``due``: a loaded machine
    delays the timeout under test by as much, while a deadline rounded up to the next
    whole second still fires about a second after this one."""
    loop = asyncio.get_running_loop()
    lag: asyncio.Future[float] = loop.create_future()
    loop.call_at(due, lambda: lag.set_result(loop.time() - due))
    return lag


async def test_a_queued_attempt_times_out_at_timeout_s(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    await bpjs_sim.fault("antrean/add", "delay-then-answer", delay_ms=9000)
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, timeout_s=5.0,
                                            retry={"max_attempts": 1}))
    simrs = Simrs(http, bpjs_sim, tenang)
    loop = asyncio.get_running_loop()
    await just_after_a_whole_second()
    started = loop.time()
    lag = loop_lag_at(started + 5)
    request_id = await simrs.send("POST", "/antreanrs/antrean/add", booking("KB-T5"))
    doc = await simrs.wait_status(request_id, "dead")
    waited = loop.time() - started
    attempt = doc["attempts"][0]
    assert attempt["error"] == "timed out waiting for upstream"
    slack = MARGIN_S + await lag
    assert 5000 <= attempt["duration_ms"] < (5 + slack) * 1000
    assert waited < 5 + slack + 1  # the loop saw the same: no whole-second overshoot


async def test_a_passthrough_read_gives_up_at_timeout_s(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    await bpjs_sim.fault("Peserta", "delay-then-answer", delay_ms=9000)
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, "vclaim", timeout_s=5.0))
    loop = asyncio.get_running_loop()
    await just_after_a_whole_second()
    started = loop.time()
    lag = loop_lag_at(started + 5)
    async with http.get(tenang.gateway_url + "/vclaim-rest/Peserta/nokartu/0001112223331/"
                        "tglSEP/2026-01-01",
                        headers=bpjs_sim.signed_headers("vclaim")) as resp:
        await resp.read()
        waited = loop.time() - started
        assert resp.headers.get("X-Tenang-Fallback")
    assert 5 <= waited < 5 + MARGIN_S + await lag


@pytest.fixture
async def silent_receiver() -> AsyncIterator[str]:
    """A SIMRS callback endpoint or webhook receiver that takes the POST and never
    answers."""
    never: asyncio.Event = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/hook"
    never.set()
    await runner.cleanup()


async def test_outcome_callbacks_and_webhooks_give_up_at_their_timeout(
        tmp_path: Path, bpjs_sim: RunningSimulator, silent_receiver: str) -> None:
    sender = CallbackSender(make_config(tmp_path, bpjs_sim.url),
                            memory_backend().outbox)
    webhook = WebhookChannel(WebhookConfig(url=silent_receiver), timeout_s=5.0)
    message = Message(Kind.BREAKER_OPEN, "antrean", 0.0, "t", "x")
    loop = asyncio.get_running_loop()

    async def timed(send: Any) -> tuple[float, float]:
        """Seconds until ``send`` gave up, and the most a busy loop explains of them."""
        await just_after_a_whole_second()
        started = loop.time()
        lag = loop_lag_at(started + 5)
        with pytest.raises((TimeoutError, SendError)):
            await send
        return loop.time() - started, 5 + MARGIN_S + await lag

    async with aiohttp.ClientSession() as session:
        (callback_s, callback_limit), (webhook_s, webhook_limit) = await asyncio.gather(
            timed(sender._aiohttp_post(silent_receiver, b"{}", {}, 5.0)),
            timed(webhook.send(message, session)))
    await sender.stop()
    assert 5 <= callback_s < callback_limit
    assert 5 <= webhook_s < webhook_limit
