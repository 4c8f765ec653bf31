"""Outcome classification of upstream answers and send errors."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from proxy.lifecycle import Outcome, Verdict
from proxy.policies.classify import classify_error, classify_response, envelope, retry_after_s

NOW = 1_700_000_000.0
HTML = b"<html><body><h1>503 Service Unavailable</h1></body></html>"


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def classify(status: int, raw: bytes, headers: Any = None, *,
             envelope_required: bool = True) -> Outcome:
    return classify_response(status, headers or {}, raw, envelope_required=envelope_required,
                             now=NOW)


# --- envelopes ----------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [
    {"metaData": {"code": "200", "message": "OK"}, "response": {"peserta": {}}},  # VClaim
    {"metadata": {"code": 200, "message": "Ok."}, "response": None},  # Antrean
    {"metadata": {"code": 1, "message": "OK"}},  # Aplicare
    {"metaData": {"code": 200, "message": "OK"}, "response": None},  # iCare
])
def test_success_codes_of_each_service(doc: dict[str, Any]) -> None:
    out = classify(200, body(doc))
    assert out.verdict is Verdict.SUCCESS
    assert not out.trips_breaker


@pytest.mark.parametrize("code", ["208", 208])
def test_208_is_a_duplicate(code: Any) -> None:
    out = classify(200, body({"metadata": {"code": code, "message": "Data sudah ada"}}))
    assert out.verdict is Verdict.DUPLICATE
    assert not out.trips_breaker
    assert "Data sudah ada" in out.reason


@pytest.mark.parametrize("code", [201, "201", 202, "-1", 400])
def test_other_envelope_codes_are_permanent_and_do_not_trip(code: Any) -> None:
    out = classify(200, body({"metadata": {"code": code, "message": "Data tidak ditemukan"}}))
    assert out.verdict is Verdict.PERMANENT
    assert out.trips_breaker is False
    assert "Data tidak ditemukan" in out.reason
    assert str(code) in out.reason


def test_envelope_rejection_inside_http_4xx_is_permanent() -> None:
    out = classify(400, body({"metaData": {"code": "201", "message": "Nomor kartu salah"}}))
    assert out.verdict is Verdict.PERMANENT
    assert not out.trips_breaker


@pytest.mark.parametrize("code", [500, "500", 503])
def test_envelope_5xx_code_is_transient_and_trips(code: Any) -> None:
    out = classify(200, body({"metadata": {"code": code, "message": "Internal error"}}))
    assert out.verdict is Verdict.TRANSIENT
    assert out.trips_breaker


def test_capitalised_spellings_are_recognised() -> None:
    raw = body({"MetaData": {"Code": "201", "Message": "Ditolak"}})
    assert envelope(raw) == ("201", "Ditolak")
    assert classify(200, raw).verdict is Verdict.PERMANENT
    assert envelope(body({"Metadata": {"code": 200, "message": "OK"}})) == ("200", "OK")
    assert envelope(body({"metaData": {"Code": 1}})) == ("1", "")


@pytest.mark.parametrize("raw", [
    body({"metadata": {"code": True, "message": "OK"}}),
    body({"metadata": {"code": [200], "message": "OK"}}),
    body({"metadata": {"code": {"v": 200}, "message": "OK"}}),
    body({"metadata": {"message": "no code"}}),
    body({"metadata": "200"}),
    body([{"metadata": {"code": 200}}]),
    body({"response": {"code": 200}}),
    b"not json",
    b"\xff\xfe",
    b"",
])
def test_not_an_envelope(raw: bytes) -> None:
    assert envelope(raw) is None
    # ...so a 200 carrying it is not a BPJS success when an envelope is required.
    out = classify(200, raw)
    assert out.verdict is Verdict.TRANSIENT
    assert out.trips_breaker


# --- HTTP status without an envelope -----------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient_and_trip(status: int) -> None:
    out = classify(status, HTML)
    assert out.verdict is Verdict.TRANSIENT
    assert out.trips_breaker
    assert str(status) in out.reason


def test_server_error_wins_over_an_envelope_in_the_body() -> None:
    out = classify(503, body({"metadata": {"code": 200, "message": "OK"}}))
    assert out.verdict is Verdict.TRANSIENT


@pytest.mark.parametrize("raw", [HTML, b"", b"   \n"])
def test_200_without_envelope_is_transient_when_envelope_required(raw: bytes) -> None:
    out = classify(200, raw, envelope_required=True)
    assert out.verdict is Verdict.TRANSIENT
    assert out.trips_breaker


def test_empty_and_html_bodies_are_told_apart_in_the_reason() -> None:
    assert "empty" in classify(200, b"").reason
    assert "non-JSON" in classify(200, HTML).reason


@pytest.mark.parametrize("raw", [HTML, b"", b'{"ok": true}'])
def test_200_without_envelope_succeeds_when_envelope_not_required(raw: bytes) -> None:
    out = classify(200, raw, envelope_required=False)
    assert out.verdict is Verdict.SUCCESS


def test_envelope_still_decides_when_not_required() -> None:
    out = classify(200, body({"metadata": {"code": 201, "message": "x"}}),
                   envelope_required=False)
    assert out.verdict is Verdict.PERMANENT


@pytest.mark.parametrize("status", [400, 404, 405])
def test_4xx_html_is_permanent(status: int) -> None:
    out = classify(status, HTML)
    assert out.verdict is Verdict.PERMANENT
    assert not out.trips_breaker


@pytest.mark.parametrize(("status", "raw"), [
    (401, HTML), (403, HTML),
    (401, body({"metaData": {"code": "401", "message": "Signature tidak valid"}})),
    (200, body({"metadata": {"code": 403, "message": "Forbidden"}})),
])
def test_auth_refusals_open_the_breaker_instead_of_failing_each_request(
        status: int, raw: bytes) -> None:
    out = classify(status, raw)
    assert out.verdict is Verdict.TRANSIENT
    assert out.trips_breaker
    assert "cons_id, secret and user_key" in out.reason


def test_icare_412_waits_the_time_named_in_the_message() -> None:
    raw = body({"metaData": {"code": 412, "message": "Silakan coba lagi dalam 00:01:30"}})
    out = classify(200, raw)
    assert out.verdict is Verdict.TRANSIENT
    assert out.retry_after_s == 90.0
    assert not out.trips_breaker


def test_412_without_a_wait_is_a_plain_rejection() -> None:
    assert classify(200, body({"metaData": {"code": 412, "message": "x"}})).verdict \
        is Verdict.PERMANENT


def test_ordering_rejection_is_retryable_only_where_the_endpoint_says_so() -> None:
    raw = body({"metadata": {"code": 201,
                             "message": "TaskId=4 tidak valid / TaskId sebelumnya belum terkirim"}})
    assert classify(200, raw).verdict is Verdict.PERMANENT
    out = classify_response(200, {}, raw, envelope_required=True, now=0.0,
                            retryable_messages=("sebelumnya belum terkirim",))
    assert out.verdict is Verdict.TRANSIENT
    assert not out.trips_breaker


# --- 429 and Retry-After ----------------------------------------------------------------


def test_429_is_transient_does_not_trip_and_carries_retry_after() -> None:
    out = classify(429, b"slow down", {"Retry-After": "120"})
    assert out.verdict is Verdict.TRANSIENT
    assert out.trips_breaker is False
    assert out.retry_after_s == 120.0


def test_429_without_retry_after() -> None:
    out = classify(429, b"")
    assert out.verdict is Verdict.TRANSIENT
    assert out.retry_after_s is None


def test_503_carries_retry_after() -> None:
    out = classify(503, HTML, {"Retry-After": "30"})
    assert out.trips_breaker
    assert out.retry_after_s == 30.0


def test_retry_after_http_date() -> None:
    date = email.utils.formatdate(NOW + 90, usegmt=True)
    assert retry_after_s({"Retry-After": date}, NOW) == pytest.approx(90.0)
    out = classify(429, b"", {"Retry-After": date})
    assert out.retry_after_s == pytest.approx(90.0)


def test_retry_after_date_in_the_past_is_zero() -> None:
    date = email.utils.formatdate(NOW - 600, usegmt=True)
    assert retry_after_s({"Retry-After": date}, NOW) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "-5", "1.5"])
def test_unusable_retry_after_is_ignored(value: str) -> None:
    assert retry_after_s({"Retry-After": value}, NOW) is None


def test_retry_after_from_real_case_insensitive_headers() -> None:
    headers = CIMultiDict({"retry-after": " 45 "})
    assert retry_after_s(headers, NOW) == 45.0


# --- errors without an HTTP answer ------------------------------------------------------


@pytest.mark.parametrize("exc", [
    TimeoutError(),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientOSError(111, "Connection refused"),
    aiohttp.ClientPayloadError("truncated"),
])
def test_send_errors_are_transient_and_trip(exc: BaseException) -> None:
    out = classify_error(exc)
    assert out.verdict is Verdict.TRANSIENT
    assert out.trips_breaker
    assert out.reason


def test_timeout_reason_says_timed_out() -> None:
    assert "timed out" in classify_error(TimeoutError()).reason
