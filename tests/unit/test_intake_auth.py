"""The intake credential check (proxy/intake/credentials.py) and the allow_from list, on their own
with a fake clock; tests/integration/test_intake_auth.py drives them over real HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from proxy.bpjs.signature import sign
from proxy.config import UpstreamConfig
from proxy.intake.allow_from import AllowList
from proxy.intake.credentials import IntakeAuth, Refusal, unsigned_warnings
from tests.conftest import FakeClock, make_config
from tests.signing import TEST_CONS_ID, TEST_SECRET, bpjs_headers

NOW = 1_800_000_000.0


def upstream(tmp_path: Path, **kwargs: Any) -> UpstreamConfig:
    return make_config(tmp_path, "http://127.0.0.1:9", **kwargs).upstreams[0]


def headers(**changes: str | None) -> CIMultiDict[str]:
    h = CIMultiDict(bpjs_headers(now=NOW))
    for name, value in changes.items():
        name = {"cons_id": "X-cons-id", "ts": "X-timestamp", "sig": "X-signature",
                "user_key": "user_key"}[name]
        h.popall(name, None)
        if value is not None:
            h[name] = value
    return h


def check(up: UpstreamConfig, h: CIMultiDict[str], now: float = NOW) -> Refusal | None:
    return IntakeAuth([up], clock=FakeClock(now)).refusal(up, h, "10.0.0.7")


def test_a_correct_header_set_passes(tmp_path: Path) -> None:
    assert check(upstream(tmp_path), headers()) is None


@pytest.mark.parametrize(("changes", "reason", "words"), [
    ({"sig": None}, "missing-header", "X-signature"),
    ({"cons_id": None, "ts": None}, "missing-header", "X-cons-id, X-timestamp"),
    ({"cons_id": "99999", "sig": sign("99999", TEST_SECRET, str(int(NOW)))}, "cons-id",
     "'99999'"),
    ({"sig": sign(TEST_CONS_ID, "wrong-secret", str(int(NOW)))}, "signature",
     "wrong consumer secret"),
    ({"ts": "1800000000000", "sig": sign(TEST_CONS_ID, TEST_SECRET, "1800000000000")},
     "timestamp", "whole UTC seconds"),
    ({"ts": "1799999000", "sig": sign(TEST_CONS_ID, TEST_SECRET, "1799999000")},
     "timestamp", "1000 s old (limit 600 s"),
    ({"ts": "1800000700", "sig": sign(TEST_CONS_ID, TEST_SECRET, "1800000700")},
     "timestamp", "700 s in the future"),
    ({"user_key": None}, "user-key", "user_key header is required"),
    ({"user_key": ""}, "user-key", "underscores_in_headers"),
])
def test_each_failure_is_named(tmp_path: Path, changes: dict[str, str | None], reason: str,
                               words: str) -> None:
    refused = check(upstream(tmp_path), headers(**changes))
    assert refused is not None
    assert refused.reason == reason
    assert refused.status == (400 if reason == "user-key" else 401)
    assert words in refused.message
    assert " / " in refused.message  # Indonesian / English


def test_header_names_match_case_insensitively(tmp_path: Path) -> None:
    h = CIMultiDict((k.upper(), v) for k, v in bpjs_headers(now=NOW).items())
    assert check(upstream(tmp_path), h) is None


def test_a_remembered_timestamp_is_still_checked_for_signature_and_age(tmp_path: Path) -> None:
    up = upstream(tmp_path)
    clock = FakeClock(NOW)
    auth = IntakeAuth([up], clock=clock)
    assert auth.refusal(up, headers()) is None
    forged = auth.refusal(up, headers(sig="AAAA" + headers()["X-signature"][4:]))
    assert forged is not None and forged.reason == "signature"
    clock.advance(601)
    stale = auth.refusal(up, headers())
    assert stale is not None and stale.reason == "timestamp"


def test_max_skew_zero_turns_the_time_check_off(tmp_path: Path) -> None:
    up = upstream(tmp_path, max_skew_s=0)
    assert check(up, headers(), now=NOW + 86_400 * 365) is None


def test_unsigned_replays_checks_cons_id_and_timestamp_only(tmp_path: Path) -> None:
    up = upstream(tmp_path, secret_env=None, unsigned_replays=True)
    assert check(up, headers(sig="not-verifiable")) is None
    # Refused for the header or field at fault, never for a signature it cannot verify.
    for changes, now, reason in (({"sig": None}, NOW, "missing-header"),
                                 ({"cons_id": "99999"}, NOW, "cons-id"),
                                 ({}, NOW + 601, "timestamp")):
        refused = check(up, headers(**changes), now=now)
        assert refused is not None and refused.reason == reason, (changes, refused)


def test_a_generic_upstream_without_secret_checks_nothing(tmp_path: Path) -> None:
    up = upstream(tmp_path, preset="generic", cons_id=None, secret_env=None)
    assert check(up, CIMultiDict()) is None


def test_a_generic_upstream_with_a_secret_is_checked_but_needs_no_user_key(
        tmp_path: Path) -> None:
    up = upstream(tmp_path, preset="generic")
    assert check(up, headers(user_key=None)) is None
    refused = check(up, headers(sig=sign(TEST_CONS_ID, "wrong", str(int(NOW)))))
    assert refused is not None and refused.reason == "signature"


@pytest.mark.parametrize("spelling", ["user-key", "userkey", "X-User-Key"])
def test_user_key_is_found_in_each_spelling_clients_use(tmp_path: Path, spelling: str) -> None:
    h = headers(user_key=None)
    h[spelling] = "0123456789abcdef"
    assert check(upstream(tmp_path), h) is None


def test_a_user_key_env_fills_in_for_a_missing_user_key(tmp_path: Path) -> None:
    up = upstream(tmp_path, user_key_env="UK", env={"UK": "key-from-env"})
    assert check(up, headers(user_key=None)) is None


def test_refusals_are_logged_without_the_signature_and_rate_limited(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    up = upstream(tmp_path)
    auth = IntakeAuth([up], clock=FakeClock(NOW))
    bad = sign(TEST_CONS_ID, "wrong-secret", str(int(NOW)))
    with caplog.at_level(logging.INFO, logger="tenang.intake_auth"):
        for _ in range(50):
            assert auth.refusal(up, headers(sig=bad), "10.0.0.7") is not None
    assert len(caplog.records) == 1
    text = caplog.text
    assert "10.0.0.7" in text and "signature" in text
    assert bad not in text and TEST_SECRET not in text


def test_the_start_up_warning_for_unsigned_replays_says_what_is_not_checked(
        tmp_path: Path) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:9", secret_env=None,
                         unsigned_replays=True)
    [warning] = unsigned_warnings(config)
    assert "unsigned_replays = true" in warning
    assert "CANNOT verify" in warning and "X-cons-id and X-timestamp only" in warning
    assert list(unsigned_warnings(make_config(tmp_path, "http://127.0.0.1:9"))) == []


# --- allow_from ---------------------------------------------------------------------------


def test_allow_list_matches_networks_addresses_and_mapped_ipv4() -> None:
    allow = AllowList(["10.1.0.0/16", "192.168.5.7", "fd00::/8"])
    assert allow.allows("10.1.2.3")
    assert allow.allows("192.168.5.7")
    assert allow.allows("::ffff:10.1.200.1")
    assert allow.allows("fd12::1")
    assert not allow.allows("10.2.0.1")
    assert not allow.allows("192.168.5.8")
    assert not allow.allows("127.0.0.1")
    assert not allow.allows(None)
    assert not allow.allows("not-an-ip")
