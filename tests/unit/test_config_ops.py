"""The [metrics], [maintenance] and [notify] sections: defaults, secrets, bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.app import insecure_cookie_warning
from proxy.config import parse_config
from tests.unit.test_config import fails_naming, minimal


def parsed(env: dict[str, str] | None = None, **sections: Any) -> Any:
    raw = minimal()
    raw.update(sections)
    return parse_config(raw, Path("."), env or {})


def test_defaults_leave_every_channel_off_and_metrics_open() -> None:
    cfg = parsed()
    assert cfg.metrics.token is None
    assert cfg.notify.webhook.url == ""
    assert cfg.notify.telegram.token is None
    assert cfg.notify.smtp.host == ""
    assert cfg.maintenance.ramp_s == 120.0


def test_secrets_come_from_the_named_environment_variables() -> None:
    env = {"M_TOK": "m-sekret", "HOOK": "h-sekret", "TG": "t-sekret", "MAILPW": "p-sekret"}
    cfg = parsed(env, metrics={"token_env": "M_TOK"}, notify={
        "webhook": {"url": "http://127.0.0.1:9/hook", "secret_env": "HOOK"},
        "telegram": {"token_env": "TG", "chat_id": "-100123"},
        "smtp": {"host": "mail.rs", "username": "u", "password_env": "MAILPW",
                 "sender": "tenang@rs", "recipients": "a@rs, b@rs"}})
    assert cfg.metrics.token == "m-sekret"
    assert cfg.notify.webhook.secret == "h-sekret"
    assert cfg.notify.telegram.token == "t-sekret"
    assert cfg.notify.smtp.password == "p-sekret"
    assert cfg.notify.smtp.recipient_list == ["a@rs", "b@rs"]
    assert "sekret" not in repr(cfg)


@pytest.mark.parametrize(("section", "key"), [
    ({"notify": {"webhook": {"url": "ftp://x"}}}, "notify.webhook.url"),
    ({"notify": {"telegram": {"token_env": "TG"}}}, "notify.telegram.chat_id"),
    ({"notify": {"telegram": {"chat_id": "1"}}}, "notify.telegram.token_env"),
    ({"notify": {"telegram": {"base_url": "api.telegram.org"}}},
     "notify.telegram.base_url"),
    ({"notify": {"smtp": {"host": "m", "recipients": "a@rs"}}}, "notify.smtp.sender"),
    ({"notify": {"smtp": {"host": "m", "sender": "t@rs"}}}, "notify.smtp.recipients"),
    ({"notify": {"smtp": {"host": "m", "sender": "t@rs", "recipients": "a@rs, nope"}}},
     "notify.smtp.recipients"),
    ({"notify": {"smtp": {"port": 0}}}, "notify.smtp.port"),
    ({"notify": {"smtp": {"starttls": "yes"}}}, "notify.smtp.starttls"),
    ({"notify": {"retry_initial_delay_s": 5.0, "retry_max_delay_s": 1.0}},
     "notify.retry_max_delay_s"),
    ({"notify": {"colour": "red"}}, "notify.colour"),
    ({"metrics": {"token": "x"}}, "metrics.token"),
])
def test_bad_values_are_named(section: dict[str, Any], key: str) -> None:
    with fails_naming(key):
        parsed(**section)


def test_smtp_password_without_username_is_refused() -> None:
    with fails_naming("notify.smtp.username"):
        parsed(notify={"smtp": {"host": "m", "sender": "t@rs", "recipients": "a@rs",
                                "password_env": "PW"}})


@pytest.mark.parametrize(("admin_listen", "secure", "warned"), [
    ("127.0.0.1:8081", False, False), ("localhost:8081", False, False),
    ("[::1]:8081", False, False), ("0.0.0.0:8081", False, True),
    ("10.1.2.3:8081", False, True), ("0.0.0.0:8081", True, False)])
def test_an_off_loopback_admin_ui_without_secure_cookies_is_warned_about(
        admin_listen: str, secure: bool, warned: bool) -> None:
    doc = {**minimal(), "server": {"admin_listen": admin_listen},
           "admin": {"cookie_secure": secure}}
    warning = insecure_cookie_warning(parse_config(doc, Path("."), {}))
    assert (warning is not None) == warned
    if warning is not None:
        assert "admin.cookie_secure = true" in warning
