"""Loopback receivers for notification tests: a webhook/Telegram endpoint (aiohttp) and
an SMTP server (aiosmtpd). Each records what arrived and can be told to fail."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message as EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller


@dataclass
class HttpReceiver:
    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)  # path, headers, body, json
    fail_next: list[int] = field(default_factory=list)  # statuses to answer first
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


RECEIVER = web.AppKey("receiver", HttpReceiver)


async def _receive(request: web.Request) -> web.Response:
    receiver = request.app[RECEIVER]
    body = await request.read()
    receiver.posts.append({"path": request.path, "headers": dict(request.headers),
                           "body": body, "json": await request.json()})
    receiver.arrived.set()
    if receiver.fail_next:
        return web.json_response({"ok": False}, status=receiver.fail_next.pop(0))
    return web.json_response({"ok": True})


@pytest.fixture
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    app = web.Application()
    app[RECEIVER] = receiver
    app.router.add_post("/{tail:.*}", _receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}"
    yield receiver
    await runner.cleanup()


class _MailHandler:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


@dataclass
class SmtpReceiver:
    host: str
    port: int
    handler: _MailHandler

    @property
    def mails(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.handler.mails


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    handler = _MailHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield SmtpReceiver("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()
