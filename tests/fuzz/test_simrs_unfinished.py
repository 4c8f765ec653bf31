"""Requests that never finish (a head without its blank line, a body shorter than its
Content-Length, chunks without the last one): the SIMRS port answers a clear 4xx once its
read timeout passes, stores nothing, sends nothing, and keeps serving. The fuzzed Tenang
runs with 1 s header and body timeouts (stack.py)."""

from __future__ import annotations

import json

import pytest

from tests.fuzz.properties import assert_clear_answer, envelope, row_count
from tests.fuzz.stack import HEAD_TIMEOUT_S, Stack, raw_exchange
from tests.fuzz.test_simrs_port import assert_still_serves, marked, new_marker, signed

WRITE = b"/antreanrs/antrean/updatewaktu"


def head(marker: str, extra: bytes) -> bytes:
    lines = [b"POST " + WRITE + b" HTTP/1.1", b"Host: tenang.local", b"Connection: close"]
    lines += [k + b": " + v for k, v in signed(marker)]
    return b"\r\n".join(lines) + b"\r\n" + extra


CASES = {
    "request line only": lambda m, body: b"POST " + WRITE + b" HTTP/1.1\r\n",
    "head without its blank line": lambda m, body: head(m, b""),
    "body shorter than Content-Length": lambda m, body: head(
        m, b"Content-Length: " + str(len(body) + 10).encode() + b"\r\n\r\n" + body),
    "chunks without the last chunk": lambda m, body: head(
        m, b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}".encode() + b"\r\n" +
        body + b"\r\n"),
    "chunk longer than its data": lambda m, body: head(
        m, b"Transfer-Encoding: chunked\r\n\r\nffff\r\n" + body),
}


@pytest.mark.parametrize("case", CASES)
def test_unfinished_request_gets_a_clear_answer_after_the_read_timeout(
        stack: Stack, case: str) -> None:
    marker = new_marker()
    body = json.dumps({"kodebooking": marker, "taskid": 3, "waktu": 1}).encode()
    rows = row_count(stack.tmp / "tenang.db")
    # the answer must come from the server's timeout, well before the client gives up
    answer = raw_exchange(stack.gateway_port, CASES[case](marker, body),
                          timeout_s=HEAD_TIMEOUT_S * 5)
    assert answer.status == 408, (case, answer.status, answer.text)
    assert_clear_answer(answer)
    envelope(answer)
    assert row_count(stack.tmp / "tenang.db") == rows, "an unfinished request was stored"
    assert not marked(stack, marker), "an unfinished request reached the simulator"
    assert_still_serves(stack)
