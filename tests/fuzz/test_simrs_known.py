"""Fuzz properties for defects of issue 10 and those the fuzz suite found (10.3, 10.8,
10.9, the signature headers' odd bytes, the HTTP parser's refusals, CONNECT, a binary
Expect header); each now guards its fix."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.properties import (
    FUZZ,
    STANDARD_METHODS,
    TRICKS,
    assert_clear_answer,
    envelope,
    resolved,
    row_count,
    under_prefix,
)
from tests.fuzz.stack import PREFIXES, Stack, raw_exchange, request_bytes
from tests.fuzz.test_simrs_port import assert_still_serves, marked, new_marker, signed

KEYED_WRITES = (b"/antreanrs/antrean/add", b"/antreanrs/antrean/updatewaktu",
                b"/aplicaresws/rest/bed/update/0301R001")


def refused_and_unsent(stack: Stack, marker: str, answer_status: int | None,
                       rows_before: int) -> None:
    assert answer_status is not None and 400 <= answer_status < 500, answer_status
    assert row_count(stack.tmp / "tenang.db") == rows_before
    assert not marked(stack, marker)


@st.composite
def nasty_bodies(draw: st.DrawFn) -> bytes:
    """Valid JSON a json module refuses to build (deep nesting) or a store cannot hold
    (a lone surrogate in the key field)."""
    if draw(st.booleans()):
        depth = draw(st.integers(min_value=2_000, max_value=60_000))
        opener = draw(st.sampled_from([b"[", b'{"kodebooking":']))
        closer = b"]" if opener == b"[" else b"}"
        return opener * depth + b"1" + closer * depth
    surrogate = draw(st.integers(min_value=0xD800, max_value=0xDFFF))
    field = draw(st.sampled_from(["kodebooking", "kodekelas", "koderuang"]))
    doc = {"kodebooking": "KB-1", "kodekelas": "VIP", "koderuang": "R1", "taskid": 3,
           "waktu": 1}
    text = json.dumps(doc).replace(f'"{doc[field]}"', f'"\\u{surrogate:04x}"', 1)
    return text.encode()


def test_deep_json_and_lone_surrogates_get_a_clear_4xx(stack: Stack) -> None:
    @FUZZ
    @given(target=st.sampled_from(KEYED_WRITES), body=nasty_bodies())
    def example(target: bytes, body: bytes) -> None:
        marker = new_marker()
        rows = row_count(stack.tmp / "tenang.db")
        answer = raw_exchange(stack.gateway_port, request_bytes(b"POST", target,
                                                                signed(marker), body))
        assert_clear_answer(answer)
        envelope(answer)
        if answer.status != 202:  # a body the route needs nothing from may be kept as bytes
            refused_and_unsent(stack, marker, answer.status, rows)

    example()
    assert_still_serves(stack)


# Write endpoints and the methods BPJS's catalog gives them (reference §6); Aplicare's
# bed update is also sent as PUT by some clients.
WRITE_ENDPOINTS = (("/antreanrs/antrean/add", ("POST",)),
                   ("/antreanrs/antrean/updatewaktu", ("POST",)),
                   ("/vclaim-rest/SEP/2.0/insert", ("POST",)),
                   ("/aplicaresws/rest/bed/update/0301R001", ("POST", "PUT")))


def test_methods_an_endpoint_does_not_declare_get_405_and_are_not_sent(stack: Stack) -> None:
    @FUZZ
    @given(endpoint=st.sampled_from(WRITE_ENDPOINTS), method=st.sampled_from(STANDARD_METHODS))
    def example(endpoint: tuple[str, tuple[str, ...]], method: str) -> None:
        path, declared = endpoint
        if method in (*declared, "OPTIONS", "CONNECT"):  # CONNECT: see the test below
            return
        marker = new_marker()
        rows = row_count(stack.tmp / "tenang.db")
        answer = raw_exchange(stack.gateway_port, request_bytes(
            method.encode(), path.encode(), signed(marker, method), b"{}"))
        assert answer.status == 405, (method, path, answer.status, answer.text)
        assert answer.headers.get("allow"), "405 without Allow"
        if method != "HEAD":  # a HEAD answer has no body (RFC 9110 §9.3.2)
            envelope(answer)
        refused_and_unsent(stack, marker, answer.status, rows)

    example()
    assert_still_serves(stack)


def test_connect_gets_405_in_an_envelope(stack: Stack) -> None:
    marker = new_marker()
    rows = row_count(stack.tmp / "tenang.db")
    answer = raw_exchange(stack.gateway_port, request_bytes(
        b"CONNECT", b"/antreanrs/antrean/add", signed(marker, "CONNECT"), b"{}"))
    assert answer.status == 405, (answer.status, answer.text)
    envelope(answer)
    refused_and_unsent(stack, marker, answer.status, rows)


def test_encoded_path_tricks_are_refused_or_stay_under_the_target(stack: Stack) -> None:
    tricks = [t for t in TRICKS if t not in ("", "~", "*")]

    @FUZZ
    @given(prefix=st.sampled_from(list(PREFIXES.values())), trick=st.sampled_from(tricks),
           tail=st.sampled_from(["x", "antrean/add", "add", "SEP/2.0/insert"]))
    def example(prefix: str, trick: str, tail: str) -> None:
        marker = new_marker()
        rows = row_count(stack.tmp / "tenang.db")
        target = f"{prefix}/{trick}/{tail}".encode()
        answer = raw_exchange(stack.gateway_port, request_bytes(b"POST", target,
                                                                signed(marker), b"{}"))
        assert_clear_answer(answer)
        envelope(answer)
        if 400 <= (answer.status or 0) < 500:
            refused_and_unsent(stack, marker, answer.status, rows)
        for entry in marked(stack, marker):
            # decoded once more and dot segments resolved, it is still under the target
            assert under_prefix(resolved(entry["path"]), prefix), (target, entry["path"])
        assert answer.status != 202 or not any(
            t in trick for t in ("%25", "%u", "%00", ";", "\\", "%5c", "%c0")), (
            f"{target!r} was accepted: an upstream decoding twice sees a traversal")

    example()
    assert_still_serves(stack)


def test_requests_the_http_parser_refuses_get_an_envelope(stack: Stack) -> None:
    @FUZZ
    @given(case=st.sampled_from([
        b"GARBAGE\r\n\r\n", b"POST /antreanrs/antrean/add\xff HTTP/1.1\r\n\r\n",
        b"POST /antreanrs/antrean/add HTTP/1.1\r\nX: \x01\r\n\r\n",
        b"POST /antreanrs/antrean/add HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /antreanrs/antrean/add HTTP/1.1\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n",
        b"GET /antreanrs/antrean HTTP/1.1\r\nExpect: 0\r\nConnection: close\r\n\r\n"]))
    def example(case: bytes) -> None:
        answer = raw_exchange(stack.gateway_port, case)
        assert answer.status in (400, 417)
        envelope(answer)

    example()


def test_a_binary_expect_header_gets_a_clear_4xx(stack: Stack) -> None:
    @FUZZ
    @given(port=st.sampled_from(["gateway", "admin"]),
           value=st.binary(min_size=1, max_size=8).filter(
               lambda b: not b.isascii() and b"\r" not in b and b"\n" not in b))
    def example(port: str, value: bytes) -> None:
        marker = new_marker()
        answer = raw_exchange(stack.gateway_port if port == "gateway" else stack.admin_port,
                              request_bytes(b"POST", b"/antreanrs/antrean/add",
                                            [*signed(marker), (b"Expect", value)], b"{}"))
        assert_clear_answer(answer)

    example()
    assert_still_serves(stack)


def test_odd_bytes_in_the_signature_headers_get_401(stack: Stack) -> None:
    @FUZZ
    # high bytes only: control bytes are the HTTP parser's plain 400 (tested above)
    @given(name=st.sampled_from([b"X-signature", b"X-timestamp", b"X-cons-id"]),
           value=st.one_of(st.lists(st.integers(min_value=0x80, max_value=0xFF), min_size=1,
                                    max_size=12).map(bytes),
               st.sampled_from(["\u00b2", "\u0661\u0662", "\uff11", "\u2460"]).map(
                   str.encode)))
    def example(name: bytes, value: bytes) -> None:
        marker = new_marker()
        rows = row_count(stack.tmp / "tenang.db")
        headers = [(k, v) for k, v in signed(marker) if k.lower() != name.lower()]
        answer = raw_exchange(stack.gateway_port, request_bytes(
            b"POST", b"/antreanrs/antrean/updatewaktu", [*headers, (name, value)], b"{}"))
        assert answer.status == 401, (name, value, answer.status, answer.text[:200])
        envelope(answer)
        refused_and_unsent(stack, marker, answer.status, rows)

    example()
    assert_still_serves(stack)


def test_an_unknown_expect_gets_417_in_an_envelope(stack: Stack) -> None:
    @FUZZ
    @given(value=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                         min_size=1, max_size=12).filter(lambda v: v.lower() != "100-continue"))
    def example(value: str) -> None:
        marker = new_marker()
        rows = row_count(stack.tmp / "tenang.db")
        answer = raw_exchange(stack.gateway_port, request_bytes(
            b"POST", b"/antreanrs/antrean/add", [*signed(marker), (b"Expect", value.encode())],
            b"{}"))
        assert answer.status == 417, (value, answer.status)
        envelope(answer)
        refused_and_unsent(stack, marker, answer.status, rows)

    example()
