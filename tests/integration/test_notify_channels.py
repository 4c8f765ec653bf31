"""Notifications over real loopback channels: a webhook (signed), a Telegram bot API
stand-in and an SMTP server (aiosmtpd); and the acceptance scenario: a 5-minute outage
with 500 failing attempts gives one "open" message and one "recovered" message."""

from __future__ import annotations

import json
import time

from proxy.config_ops import NotifyConfig, SmtpConfig, TelegramConfig, WebhookConfig
from proxy.lifecycle import Status
from proxy.observe.notify import Notifier
from proxy.observe.notify_channels import build_channels
from proxy.policies.breaker import AsyncBreaker, BreakerState
from proxy.signing import HEADER as SIGNATURE_HEADER
from proxy.signing import verify
from tests.conftest import wait_until
from tests.integration.notify_receivers import (
    HttpReceiver,
    SmtpReceiver,
    http_receiver,
    smtp_receiver,
)

__all__ = ["http_receiver", "smtp_receiver"]  # fixtures used below

TOKEN = "123456:bot-token"


def config(http: HttpReceiver, smtp: SmtpReceiver, **kw: float) -> NotifyConfig:
    return NotifyConfig(
        breaker_open_after_s=60.0, window_s=900.0, retry_attempts=3,
        retry_initial_delay_s=0.01, retry_max_delay_s=0.02, timeout_s=5.0,
        webhook=WebhookConfig(url=f"{http.url}/hook", secret_env="X", secret="hook-secret"),
        telegram=TelegramConfig(base_url=http.url, token_env="T", chat_id="-1001",
                                token=TOKEN),
        smtp=SmtpConfig(host=smtp.host, port=smtp.port, starttls=False,
                        sender="tenang@rs.example", recipients="it@rs.example, on@rs.example"),
        **kw)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def by_kind(http: HttpReceiver) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for post in http.posts:
        if post["path"] == "/hook":
            out.setdefault(str(post["json"]["event"]), []).append(post)
    return out


async def test_five_minute_outage_with_500_failures_gives_one_open_and_one_recovery(
        http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver) -> None:
    clock = Clock()
    cfg = config(http_receiver, smtp_receiver, check_interval_s=15.0)
    notifier = Notifier(cfg, build_channels(cfg), clock=clock)
    breaker = AsyncBreaker("antrean", fail_max=5, reset_timeout_s=0.5,
                           on_change=notifier.breaker_changed)
    notifier.start(periodic=False)
    try:
        failures, next_check = 0, clock.now + 15
        # 500 failing attempts over 5 minutes (one every 0.6 s of fake time): the first
        # five open the circuit, then every probe fails and re-opens it.
        while failures < 500:
            clock.now += 0.6
            permit = breaker.try_acquire(now=clock.now)
            if permit is not None:
                breaker.record(permit, failure=True)
                failures += 1
            if clock.now >= next_check:  # the periodic check, on the fake clock
                await notifier.check()
                next_check += 15
        assert breaker.state is BreakerState.OPEN
        clock.now += 1
        probe = breaker.try_acquire(now=clock.now + 1)
        assert probe is not None
        breaker.record(probe, failure=False)  # BPJS is back
        assert breaker.state is BreakerState.CLOSED
        await notifier.check()
        await notifier.flush()
    finally:
        await notifier.stop()

    hooks = by_kind(http_receiver)
    assert sorted(hooks) == ["breaker_closed", "breaker_open"]
    assert len(hooks["breaker_open"]) == 1
    assert len(hooks["breaker_closed"]) == 1
    telegram = [p for p in http_receiver.posts if p["path"] == f"/bot{TOKEN}/sendMessage"]
    assert len(telegram) == 2
    assert {p["json"]["chat_id"] for p in telegram} == {"-1001"}
    assert "circuit open" in telegram[0]["json"]["text"]
    subjects = [mail["Subject"] for _, _, mail in smtp_receiver.mails]
    assert subjects == ["[Tenang] antrean: sirkuit terbuka / circuit open",
                        "[Tenang] antrean: pulih / recovered"]


async def test_webhook_is_signed_with_the_shared_secret(
        http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver) -> None:
    cfg = config(http_receiver, smtp_receiver)
    notifier = Notifier(cfg, build_channels(cfg), clock=Clock())
    notifier.start(periodic=False)
    try:
        notifier.request_finished("antrean", "01JREQ", Status.DEAD, "retry limit reached")
        await notifier.flush()
    finally:
        await notifier.stop()
    [hook] = [p for p in http_receiver.posts if p["path"] == "/hook"]
    headers = hook["headers"]
    assert verify("hook-secret", headers[SIGNATURE_HEADER], hook["body"], now=time.time())
    doc = json.loads(hook["body"])
    assert doc["event"] == "dead" and doc["request_ids"] == ["01JREQ"]
    assert "retry limit reached" in doc["text"]
    [(sender, rcpts, mail)] = smtp_receiver.mails
    assert sender == "tenang@rs.example"
    assert rcpts == ["it@rs.example", "on@rs.example"]
    assert "01JREQ" in mail.get_payload()


async def test_receiver_errors_are_retried_and_4xx_is_not(
        http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver) -> None:
    cfg = config(http_receiver, smtp_receiver)
    cfg = NotifyConfig(retry_attempts=3, retry_initial_delay_s=0.01, retry_max_delay_s=0.02,
                       webhook=cfg.webhook)
    http_receiver.fail_next = [503, 500]
    notifier = Notifier(cfg, build_channels(cfg), clock=Clock())
    notifier.start(periodic=False)
    try:
        notifier.request_finished("antrean", "a", Status.DEAD, "x")
        await notifier.flush()
        assert len(http_receiver.posts) == 3  # two failures, then accepted
        http_receiver.fail_next = [400, 400, 400]
        notifier.request_finished("vclaim", "b", Status.DEAD, "x")
        await notifier.flush()
        assert len(http_receiver.posts) == 4  # 400: the message itself is refused
    finally:
        await notifier.stop()


async def test_unreachable_smtp_does_not_hold_up_the_webhook(
        http_receiver: HttpReceiver) -> None:
    cfg = NotifyConfig(retry_attempts=2, retry_initial_delay_s=0.01, retry_max_delay_s=0.02,
                       timeout_s=2.0, webhook=WebhookConfig(url=f"{http_receiver.url}/hook"),
                       smtp=SmtpConfig(host="127.0.0.1", port=1, starttls=False,
                                       sender="t@rs", recipients="a@rs"))
    results: list[tuple[str, str]] = []
    notifier = Notifier(cfg, build_channels(cfg), clock=Clock(),
                        on_result=lambda c, r: results.append((c, r)))
    notifier.start(periodic=False)
    try:
        notifier.request_finished("antrean", "a", Status.HELD, "behind x")
        await wait_until(lambda: len(http_receiver.posts) == 1, what="the webhook")
        await notifier.flush()
    finally:
        await notifier.stop()
    assert sorted(results) == [("smtp", "failed"), ("webhook", "sent")]
