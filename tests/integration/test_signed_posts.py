"""Outcome callbacks and webhook notifications, received over real HTTP on loopback,
carry one signature format: ``proxy.signing.verify`` accepts both as sent, and refuses
them with a tampered body or once their time is past the tolerance."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config_ops import WebhookConfig
from proxy.observe.notify_channels import WebhookChannel
from proxy.observe.notify_rules import Kind, Message
from proxy.signing import HEADER, TOLERANCE_S, verify
from tests.conftest import admin_headers, wait_until
from tests.integration.notify_receivers import HttpReceiver, http_receiver
from tests.integration.test_callbacks_http import CALLBACK_SECRET, config, submit

__all__ = ["http_receiver"]  # fixture used below


def check_signed(post: dict[str, Any], secret: str, sent_at: float) -> None:
    header, body = post["headers"][HEADER], post["body"]
    assert verify(secret, header, body, now=sent_at)
    assert not verify(secret, header, body.replace(b"}", b',"x":1}', 1), now=sent_at)
    assert not verify(secret, header, body, now=sent_at + TOLERANCE_S + 2)  # a replay
    assert not verify("another secret", header, body, now=sent_at)


async def test_an_outcome_callback_verifies(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    tenang = await start_tenang(config(tmp_path, bpjs_sim, http_receiver),
                                relay_enabled=False)
    tenang.callbacks.start()
    request_id = await submit(http, bpjs_sim, tenang, "KB-SIGNED")
    async with http.post(f"{tenang.admin_url}/api/v1/requests/{request_id}/cancel",
                         headers=admin_headers()) as resp:
        assert resp.status == 200
    await wait_until(lambda: bool(http_receiver.posts), what="the callback to arrive")
    [post] = http_receiver.posts
    assert post["json"]["id"] == request_id and post["json"]["status"] == "cancelled"
    check_signed(post, CALLBACK_SECRET, time.time())


async def test_a_webhook_notification_verifies(
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    secret, sent_at = "hook-s3cret", time.time()
    channel = WebhookChannel(WebhookConfig(url=f"{http_receiver.url}/hook", secret_env="X",
                                           secret=secret), 5.0, clock=lambda: sent_at)
    await channel.send(Message(Kind.DEAD, "antrean", sent_at, "dead", "1 request dead",
                               request_ids=("01JREQ",)), http)
    [post] = http_receiver.posts
    assert post["json"]["request_ids"] == ["01JREQ"]
    assert "X-Tenang-Timestamp" not in post["headers"]  # the time is in the signature
    check_signed(post, secret, sent_at)
