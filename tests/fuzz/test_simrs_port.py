"""Fuzzing the SIMRS port over raw sockets: malformed request lines, invalid UTF-8 in the
path, headers and body, huge and numerous headers, bad chunk sizes, Content-Length
mismatches, deep and invalid JSON, every method, encoded paths.

Properties: every answer is a clear 4xx or a correct 2xx in a BPJS envelope (metaData /
metadata); never a 5xx or traceback text; a refused input stores nothing and reaches the
simulator never; whatever reaches it arrives under the configured target of the prefix it
was sent to; and a normal signed write still gets its 202 afterwards.
"""

from __future__ import annotations

import itertools
import json
import posixpath
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.properties import (
    FUZZ,
    assert_clear_answer,
    bodies,
    envelope,
    extra_headers,
    has_row,
    methods,
    row_count,
    targets,
    under_prefix,
)
from tests.fuzz.stack import PREFIXES, Answer, Stack, raw_exchange, request_bytes
from tests.signing import bpjs_headers

_markers = itertools.count(1)


def signed(marker: str, method: str = "POST") -> list[tuple[bytes, bytes]]:
    """A valid BPJS header set whose user_key names the example (see stack.py)."""
    headers = bpjs_headers(method=method, user_key=marker)
    return [(k.encode(), v.encode()) for k, v in headers.items()]


def new_marker() -> str:
    return f"fz-{next(_markers):06d}"


def prefix_of(target: bytes) -> str | None:
    """The configured prefix a target falls under (case-insensitive, runs of / as one,
    as Tenang matches prefixes)."""
    path = re.sub("/+", "/", target.split(b"?")[0].decode("latin-1").lower())
    for prefix in PREFIXES.values():
        if under_prefix(path, prefix):
            return prefix
    return None


def marked(stack: Stack, marker: str) -> list[dict[str, Any]]:
    return [e for e in stack.sim_log() if e["headers"].get("user_key") == marker]


def relayed(stack: Stack, marker: str, answer: Answer) -> bool:
    """A passthrough read relays BPJS's own answer byte for byte, an nginx HTML 404 for
    an unknown path included (what the SIMRS would get from BPJS itself): that answer is
    BPJS's, not Tenang's, and needs no envelope of Tenang's."""
    return any(e["status"] == answer.status and str(e["answer"]).startswith("html-4")
               for e in marked(stack, marker))


def check(stack: Stack, marker: str, target: bytes, answer: Answer, rows_before: int,
          *, method: str = "POST") -> bool:
    """The properties of one answer (see the module docstring); True when Tenang itself
    refused it (a relayed BPJS 4xx is BPJS's answer, not a refusal)."""
    assert_clear_answer(answer)
    from_bpjs = relayed(stack, marker, answer)
    if not (from_bpjs or method == "HEAD"):  # a HEAD answer has no body by definition
        envelope(answer)
    db = stack.tmp / "tenang.db"
    refused = 400 <= (answer.status or 0) < 500 and not from_bpjs
    if refused:
        assert row_count(db) == rows_before, "a refused request was stored"
        assert not marked(stack, marker), "a refused request reached the simulator"
    if answer.status == 202:
        request_id = answer.headers.get("x-tenang-request-id", "")
        assert request_id and has_row(db, request_id), answer.headers
    for entry in marked(stack, marker):
        assert under_prefix(served_path(entry), prefix_of(target) or "/nowhere"), (
            target, entry)
    return refused


def assert_still_serves(stack: Stack) -> None:
    marker = new_marker()
    body = json.dumps({"kodebooking": marker, "taskid": 3, "waktu": 1}).encode()
    answer = raw_exchange(stack.gateway_port, request_bytes(
        b"POST", b"/antreanrs/antrean/updatewaktu", signed(marker), body))
    assert answer.status == 202, (answer.status, answer.text)


def assert_log_clean(stack: Stack, accepted: dict[str, bytes], refused: set[str]) -> None:
    """Nothing in the simulator's log for a refused example, and every delivery under
    the target of the prefix it was sent to."""
    for entry in stack.sim_log():
        marker = entry["headers"].get("user_key", "")
        assert marker not in refused, ("a refused request reached the simulator", entry)
        if marker in accepted:
            assert under_prefix(served_path(entry), prefix_of(accepted[marker]) or "/nowhere"), (
                accepted[marker], entry)


def settle(stack: Stack, accepted: dict[str, bytes], refused: set[str],
           timeout_s: float = 20.0) -> None:
    """Check the log, wait until the relay has nothing left to send, check it again."""
    assert_log_clean(stack, accepted, refused)
    deadline = time.monotonic() + timeout_s
    while (busy := unfinished(stack.tmp / "tenang.db")):
        assert time.monotonic() < deadline, (f"{busy} requests still not final",
                                             unfinished_rows(stack.tmp / "tenang.db"))
        time.sleep(0.05)
    assert_log_clean(stack, accepted, refused)


def unfinished(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM requests WHERE status IN "
                                "('pending', 'in_flight')").fetchone()[0])
    finally:
        conn.close()


def unfinished_rows(db: Path) -> list[tuple[str, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(map(str, r)) for r in conn.execute(
            "SELECT method, path, status, attempts, reason, substr(body, 1, 120) FROM requests"
            " WHERE status IN ('pending', 'in_flight')")]
    finally:
        conn.close()


def served_path(entry: dict[str, Any]) -> str:
    """The path the simulator received, dot segments resolved as a server would."""
    return posixpath.normpath(str(entry["path"]))


@pytest.fixture
def ledger() -> tuple[dict[str, bytes], set[str]]:
    return {}, set()


def test_any_method_target_and_body_gets_a_clear_enveloped_answer(
        stack: Stack, ledger: tuple[dict[str, bytes], set[str]]) -> None:
    accepted, refused = ledger

    @FUZZ
    @given(method=methods, target=targets(), body=bodies, extra=extra_headers)
    def example(method: str, target: bytes, body: bytes,
                extra: list[tuple[bytes, bytes]]) -> None:
        marker = new_marker()
        rows = row_count(stack.tmp / "tenang.db")
        answer = raw_exchange(stack.gateway_port, request_bytes(
            method.encode(), target, signed(marker, method) + extra, body))
        if check(stack, marker, target, answer, rows, method=method):
            refused.add(marker)
        else:
            accepted[marker] = target

    example()
    settle(stack, accepted, refused)
    assert_still_serves(stack)


WRITE = b"/antreanrs/antrean/updatewaktu"


@st.composite
def framings(draw: st.DrawFn) -> tuple[bytes, str]:
    """A signed write whose framing is wrong in one way; returns (request, what)."""
    marker = new_marker()
    body = json.dumps({"kodebooking": marker, "taskid": 3, "waktu": 1}).encode()
    headers = signed(marker)
    kind = draw(st.sampled_from(["cl-short", "cl-bad", "cl-twice", "chunk-bad",
                                 "chunk-and-cl", "te-unknown", "many-headers",
                                 "huge-header", "header-utf8", "line"]))
    if kind == "cl-short":  # Content-Length smaller than the body: the rest is a 2nd request
        n = draw(st.integers(min_value=0, max_value=len(body) - 1))
        req = request_bytes(b"POST", WRITE, [*headers, (b"Content-Length", str(n).encode())],
                            body, content_length=False)
    elif kind == "cl-bad":
        value = draw(st.sampled_from([b"-1", b"abc", b"1e3", b"0x10", b" 5", b"+5",
                                      b"99999999999999999999999", b"5, 5", b"\xff"]))
        req = request_bytes(b"POST", WRITE, [*headers, (b"Content-Length", value)], body,
                            content_length=False)
    elif kind == "cl-twice":
        twice = [(b"Content-Length", b"3"), (b"Content-Length", b"5")]
        req = request_bytes(b"POST", WRITE, headers + twice, body, content_length=False)
    elif kind in ("chunk-bad", "chunk-and-cl"):
        size = draw(st.sampled_from([b"zz", b"-1", b"0x5", b"1;" + b"x" * 9000, b"g",
                                     b" 5", b"5 5", b"\xff"]))
        chunked = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
        extra = [(b"Transfer-Encoding", b"chunked")]
        if kind == "chunk-and-cl":
            extra.append((b"Content-Length", str(len(chunked)).encode()))
        req = request_bytes(b"POST", WRITE, headers + extra, chunked, content_length=False)
    elif kind == "te-unknown":
        te = draw(st.sampled_from([b"gzip", b"chunked, gzip", b"identity", b"xchunked",
                                   b"chunked\xff"]))
        req = request_bytes(b"POST", WRITE, [*headers, (b"Transfer-Encoding", te)], body)
    elif kind == "many-headers":
        n = draw(st.integers(min_value=100, max_value=400))
        req = request_bytes(b"POST", WRITE, headers + [(b"X-F%d" % i, b"v")
                                                       for i in range(n)], body)
    elif kind == "huge-header":
        n = draw(st.integers(min_value=8_000, max_value=70_000))
        req = request_bytes(b"POST", WRITE, [*headers, (b"X-Huge", b"v" * n)], body)
    elif kind == "header-utf8":
        value = draw(st.binary(min_size=1, max_size=30).filter(
            lambda b: b"\r" not in b and b"\n" not in b))
        name = draw(st.sampled_from([b"X-Fuzz", b"Content-Type", b"Idempotency-Key",
                                     b"X-cons-id", b"X-timestamp", b"X-signature",
                                     b"user_key"]))
        kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
        req = request_bytes(b"POST", WRITE, [*kept, (name, value)], body)
    else:  # a malformed request line
        line = draw(st.sampled_from([
            b"POST", b"POST " + WRITE, b"POST " + WRITE + b" HTTP/9.9", b"POST  " + WRITE +
            b" HTTP/1.1", b"POST " + WRITE + b" HTTP/1.1 extra", b"\x00\x01\x02",
            b"POST http://evil.example" + WRITE + b" HTTP/1.1", b" " * 50,
            b"POST " + WRITE + b"\xff HTTP/1.1", b"P\xffST " + WRITE + b" HTTP/1.1",
            b"POST * HTTP/1.1", b"POST " + b"/a" * 5000 + b" HTTP/1.1"]))
        req = line + b"\r\nHost: x\r\nConnection: close\r\nContent-Length: " + \
            str(len(body)).encode() + b"\r\n\r\n" + body
    return req, marker


def test_broken_framing_gets_a_clear_answer_and_stores_nothing_half_read(
        stack: Stack, ledger: tuple[dict[str, bytes], set[str]]) -> None:
    accepted, refused = ledger

    @FUZZ
    @given(case=framings())
    def example(case: tuple[bytes, str]) -> None:
        request, marker = case
        rows = row_count(stack.tmp / "tenang.db")
        answer = raw_exchange(stack.gateway_port, request, timeout_s=5.0)
        if check(stack, marker, WRITE, answer, rows):
            refused.add(marker)
        else:  # a framing aiohttp reads as valid
            accepted[marker] = WRITE

    example()
    settle(stack, accepted, refused)
    assert_still_serves(stack)
