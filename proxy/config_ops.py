"""Configuration of the operations side: ``[metrics]``, ``[maintenance]``, ``[notify]``,
``[retention]``.

Plain frozen dataclasses loaded by ``proxy.config`` like every other section; secrets
are named by ``*_env`` keys and filled in by ``proxy.config`` (the only module that
reads the environment) into the fields marked ``derived``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import time
from urllib.parse import urlsplit

_DERIVED = {"derived": True}


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    # Empty: GET /metrics needs no token (keep the admin port off the LAN then).
    token_env: str = ""
    token: str | None = field(default=None, metadata=_DERIVED, repr=False)


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    ramp_s: float = 120.0
    check_interval_s: float = 5.0


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str = ""
    secret_env: str = ""
    secret: str | None = field(default=None, metadata=_DERIVED, repr=False)


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    base_url: str = "https://api.telegram.org"
    token_env: str = ""
    chat_id: str = ""
    token: str | None = field(default=None, metadata=_DERIVED, repr=False)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = ""
    port: int = 587
    starttls: bool = True
    username: str = ""
    password_env: str = ""
    sender: str = ""
    recipients: str = ""  # comma-separated addresses
    password: str | None = field(default=None, metadata=_DERIVED, repr=False)

    @property
    def recipient_list(self) -> list[str]:
        return [r.strip() for r in self.recipients.split(",") if r.strip()]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    breaker_open_after_s: float = 300.0
    oldest_pending_after_s: float = 1800.0
    window_s: float = 900.0
    check_interval_s: float = 15.0
    timeout_s: float = 10.0
    retry_attempts: int = 5
    retry_initial_delay_s: float = 2.0
    retry_max_delay_s: float = 60.0
    queue_size: int = 100
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long stored requests are kept (UU PDP 27/2022: no longer than needed). Only
    final ones are ever purged (``lifecycle.FINAL``), counted from their last change.
    Unset: kept forever."""

    # Request and response bodies (and callback payloads) are dropped; metadata is kept.
    bodies_after_days: int | None = None
    # Whole rows go, with their attempts and callbacks (audit entries stay).
    rows_after_days: int | None = None
    # The daily purge while serving, at this time of day in WIB ("HH:MM").
    run_at: str = "02:00"
    # Requests per batch: each batch is one short transaction, so intake goes on between.
    batch_size: int = 500

    @property
    def enabled(self) -> bool:
        return self.bodies_after_days is not None or self.rows_after_days is not None

    @property
    def run_at_time(self) -> time:
        hours, minutes = self.run_at.split(":")
        return time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """The audit trail's own settings (issue 14)."""

    # The hash chain over what is stored (``proxy.store.chain``): tamper evidence. Off,
    # nothing stored meanwhile can be verified; the store records each switch (an audit
    # entry "chain_off" or "chain_on", itself in the chain), and `tenang audit verify`
    # and the admin UI say plainly that the chain is off.
    chain: bool = True


_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def retention_problems(r: RetentionConfig) -> Iterator[tuple[str, str]]:
    """(key, message) for every invalid ``[retention]`` value."""
    for name in ("bodies_after_days", "rows_after_days"):
        days = getattr(r, name)
        if days is not None and days < 1:
            yield f"retention.{name}", "must be a whole number of days >= 1 (unset: keep forever)"
    if (r.bodies_after_days is not None and r.rows_after_days is not None
            and r.rows_after_days < r.bodies_after_days):
        yield ("retention.rows_after_days",
               f"must be >= bodies_after_days ({r.bodies_after_days}): a row goes with its body")
    if not _HH_MM.match(r.run_at):
        yield "retention.run_at", f'must be a time of day in WIB as "HH:MM", got {r.run_at!r}'
    if r.batch_size < 1:
        yield "retention.batch_size", "must be >= 1"


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def problems(metrics: MetricsConfig, maintenance: MaintenanceConfig,
             notify: NotifyConfig) -> Iterator[tuple[str, str]]:
    """(key, message) for every invalid value; ``proxy.config`` raises on the first."""
    m = maintenance
    if m.ramp_s < 0:
        yield "maintenance.ramp_s", "must be >= 0 (0: no ramp)"
    if m.check_interval_s <= 0:
        yield "maintenance.check_interval_s", "must be > 0"
    n = notify
    for name in ("breaker_open_after_s", "oldest_pending_after_s", "window_s"):
        if getattr(n, name) < 0:
            yield f"notify.{name}", "must be >= 0"
    for name in ("check_interval_s", "timeout_s", "retry_initial_delay_s"):
        if getattr(n, name) <= 0:
            yield f"notify.{name}", "must be > 0"
    if n.retry_max_delay_s < n.retry_initial_delay_s:
        yield "notify.retry_max_delay_s", "must be >= retry_initial_delay_s"
    if n.retry_attempts < 1:
        yield "notify.retry_attempts", "must be >= 1"
    if n.queue_size < 1:
        yield "notify.queue_size", "must be >= 1"
    if n.webhook.url and not _http_url(n.webhook.url):
        yield "notify.webhook.url", "must be empty (off) or an absolute http(s) URL"
    t = n.telegram
    if not _http_url(t.base_url):
        yield "notify.telegram.base_url", "must be an absolute http(s) URL"
    if bool(t.token_env) != bool(t.chat_id):
        yield ("notify.telegram.chat_id" if t.token_env else "notify.telegram.token_env",
               "set both token_env and chat_id, or neither (off)")
    yield from _smtp_problems(n.smtp)


def _smtp_problems(s: SmtpConfig) -> Iterator[tuple[str, str]]:
    if not 0 < s.port < 65536:
        yield "notify.smtp.port", "must be 1-65535"
    if not s.host:
        return
    if "@" not in s.sender:
        yield "notify.smtp.sender", "must be an e-mail address when smtp.host is set"
    if not s.recipient_list or any("@" not in r for r in s.recipient_list):
        yield "notify.smtp.recipients", "must list e-mail addresses (comma-separated)"
    if s.password_env and not s.username:
        yield "notify.smtp.username", "required when password_env is set"
