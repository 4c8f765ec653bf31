"""Where notifications go: a generic JSON webhook, a Telegram bot, SMTP e-mail.

Each channel sends one message or raises ``SendError``; ``permanent`` errors (the
receiver refused the message itself: bad chat id, 4xx, refused recipients) are not
retried, everything else is (``proxy.observe.notify`` retries with backoff).
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Protocol

import aiohttp

from proxy import signing
from proxy.config_ops import NotifyConfig, SmtpConfig, TelegramConfig, WebhookConfig
from proxy.http_timeouts import exact_timeout
from proxy.observe.notify_rules import Message


class SendError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    name: str

    async def send(self, message: Message, session: aiohttp.ClientSession) -> None:
        """Deliver ``message`` once; raise SendError when it was not accepted."""


async def _post(session: aiohttp.ClientSession, url: str, body: bytes,
                headers: dict[str, str], timeout_s: float, what: str) -> None:
    try:
        async with session.post(url, data=body, headers=headers,
                                timeout=exact_timeout(timeout_s)) as resp:
            await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SendError(f"{what}: {type(exc).__name__}: {exc}") from exc
    if 200 <= status < 300:
        return
    # 4xx other than 408/429 means this message will never be accepted as it is.
    permanent = 400 <= status < 500 and status not in (408, 429)
    raise SendError(f"{what}: HTTP {status}", permanent=permanent)


class WebhookChannel:
    name = "webhook"

    def __init__(self, config: WebhookConfig, timeout_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self.clock = clock

    async def send(self, message: Message, session: aiohttp.ClientSession) -> None:
        body = json.dumps(message.as_json(), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if self.config.secret:  # signed like outcome callbacks: one format for receivers
            headers[signing.HEADER] = signing.sign(self.config.secret, body, self.clock())
        await _post(session, self.config.url, body, headers, self.timeout_s, "webhook")


class TelegramChannel:
    name = "telegram"

    def __init__(self, config: TelegramConfig, timeout_s: float) -> None:
        self.config = config
        self.timeout_s = timeout_s

    async def send(self, message: Message, session: aiohttp.ClientSession) -> None:
        url = f"{self.config.base_url.rstrip('/')}/bot{self.config.token}/sendMessage"
        body = json.dumps({"chat_id": self.config.chat_id,
                           "text": f"{message.title}\n\n{message.text}"}).encode()
        # The URL holds the bot token: never let it reach an error message or a log.
        try:
            await _post(session, url, body, {"Content-Type": "application/json"},
                        self.timeout_s, "telegram")
        except SendError as exc:
            token = self.config.token or ""
            raise SendError(str(exc).replace(token, "<token>") if token else str(exc),
                            permanent=exc.permanent) from None


class SmtpChannel:
    name = "smtp"

    def __init__(self, config: SmtpConfig, timeout_s: float) -> None:
        self.config = config
        self.timeout_s = timeout_s

    async def send(self, message: Message, session: aiohttp.ClientSession) -> None:
        mail = EmailMessage()
        mail["Subject"] = message.title
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.recipient_list)
        mail.set_content(message.text)
        # smtplib blocks; a thread keeps the event loop (intake, relay) running.
        await asyncio.to_thread(self._send_blocking, mail)

    def _send_blocking(self, mail: EmailMessage) -> None:
        c = self.config
        try:
            with smtplib.SMTP(c.host, c.port, timeout=self.timeout_s) as smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, c.password or "")
                smtp.send_message(mail)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused,
                smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError) as exc:
            raise SendError(f"smtp: {type(exc).__name__}: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"smtp: {type(exc).__name__}: {exc}") from exc


def build_channels(config: NotifyConfig) -> list[Channel]:
    """The channels ``config`` turns on (a Telegram chat without its token is skipped;
    ``proxy.app`` warns about it at start)."""
    channels: list[Channel] = []
    if config.webhook.url:
        channels.append(WebhookChannel(config.webhook, config.timeout_s))
    if config.telegram.chat_id and config.telegram.token:
        channels.append(TelegramChannel(config.telegram, config.timeout_s))
    if config.smtp.host:
        channels.append(SmtpChannel(config.smtp, config.timeout_s))
    return channels
