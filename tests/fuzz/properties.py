"""What every fuzzed answer must satisfy, and the strategies that build the inputs.

Short form in CI: ``max_examples`` per property from ``TENANG_FUZZ_EXAMPLES`` (default
100). The long form: ``TENANG_FUZZ_EXAMPLES=5000 .venv/bin/pytest -q tests/fuzz``.
"""

from __future__ import annotations

import json
import os
import posixpath
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.fuzz.stack import PREFIXES, Answer

EXAMPLES = int(os.environ.get("TENANG_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "', "Error handling request",
                     "Server got itself in trouble")

# Every registered method, WebDAV's, and made-up tokens.
STANDARD_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
                    "CONNECT", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK",
                    "UNLOCK", "SEARCH", "REPORT", "PURGE", "LINK", "UNLINK")


def rarely(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any],
           one_in: int = 8) -> st.SearchStrategy[Any]:
    """``rare`` in about one example of ``one_in``: inputs aiohttp's HTTP parser refuses
    (made-up methods, raw bytes in the target, control bytes in headers) would otherwise
    end most examples before any Tenang code runs."""
    return st.integers(min_value=1, max_value=one_in).flatmap(
        lambda n: rare if n == 1 else common)


methods = rarely(st.one_of(st.sampled_from(("POST", "GET")), st.sampled_from(STANDARD_METHODS)),
                 st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-_", min_size=1, max_size=12))

# Path pieces: the endpoints' own words, and the encodings a path trick uses.
WORDS = ("antrean", "add", "updatewaktu", "batal", "SEP", "2.0", "insert", "rest", "bed",
         "update", "0301R001", "Peserta", "nokartu", "0001234567890", "tglSEP", "ref",
         "poli", "getlisttask", "x", "")
TRICKS = ("%252e%252e", "%u002e%u002e", "%00", ";x=..;", "\\..\\", "%5c..%5c", "..%2f",
          "%2e%2e", "%2E", "..", ".", "%2f", "%252f", "add%00.json", "add;x=..;", "%c0%ae",
          "%ff", "%", "%zz", "~", "*", "@evil.example", "//evil.example")
segments = st.one_of(st.sampled_from(WORDS), st.sampled_from(TRICKS),
                     st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                                                    exclude_characters="?#/ "),
                             max_size=10))


# Real endpoints, so that a share of the examples is stored, delivered and checked at
# the simulator rather than refused at once.
ENDPOINTS = ("/antreanrs/antrean/add", "/antreanrs/antrean/updatewaktu",
             "/antreanrs/antrean/batal", "/vclaim-rest/SEP/2.0/insert",
             "/aplicaresws/rest/bed/update/0301R001",
             "/vclaim-rest/Peserta/nokartu/0001234567890/tglSEP/2025-01-01",
             "/antreanrs/ref/poli", "/antreanrs//antrean/add", "/ANTREANRS/antrean/add")


@st.composite
def targets(draw: st.DrawFn) -> bytes:
    """A request-target under one of the prefixes (or none), with an optional raw query."""
    prefix = draw(st.sampled_from([*PREFIXES.values(), "", "/other"]))
    path = prefix + "/" + "/".join(draw(st.lists(segments, min_size=1, max_size=6)))
    if draw(st.integers(min_value=1, max_value=3)) == 1:
        path = draw(st.sampled_from(ENDPOINTS))
    query = draw(st.one_of(st.just(""), st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="#"),
        max_size=20)))
    raw = (path + ("?" + query if query else "")).encode()
    if draw(st.integers(min_value=1, max_value=8)) > 1:
        return raw
    # raw bytes a client should have encoded: invalid UTF-8, controls, spaces
    junk = draw(st.binary(min_size=1, max_size=4).filter(lambda b: b"\r" not in b
                                                         and b"\n" not in b))
    cut = draw(st.integers(min_value=1, max_value=len(raw)))
    return raw[:cut] + junk + raw[cut:]


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                        st.text(max_size=20))
json_docs = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)
booking_docs = st.fixed_dictionaries(
    {"kodebooking": st.text(max_size=20), "taskid": st.one_of(st.integers(), st.text()),
     "waktu": st.one_of(st.integers(), st.floats(), st.text())},
    optional={"kodekelas": st.text(max_size=5), "koderuang": st.text(max_size=5),
              "request": json_docs})


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# Valid JSON nested past what the json module parses, and lone surrogates (issue 10.3).
deep_json = st.tuples(st.integers(min_value=500, max_value=60_000),
                      st.sampled_from([(b"[", b"]"), (b'{"kodebooking":', b"}"),
                                       (b'{"request":', b"}")])).map(
    lambda d: d[1][0] * d[0] + b"1" + d[1][1] * d[0])
surrogates = st.tuples(st.integers(min_value=0xD800, max_value=0xDFFF),
                       st.sampled_from(["kodebooking", "kodekelas", "koderuang", "catatan"])).map(
    lambda s: f'{{"{s[1]}": "\\u{s[0]:04x}", "taskid": 3}}'.encode())

bodies = st.one_of(
    deep_json,
    surrogates,
    st.just(b""),
    json_docs.map(_json_bytes),
    booking_docs.map(_json_bytes),
    st.binary(max_size=200),                                    # invalid UTF-8 included
    st.text(max_size=100).map(lambda t: t.encode("utf-8")),     # not JSON
    st.integers(min_value=1, max_value=200).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=200).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"{", b"[1,]", b'{"a":}', b"nul", b"\x00", b"\xef\xbb\xbf{}", b"NaN",
                     b'{"a":1}{"b":2}', b'"\\x"', b"1e99999"]),
)

header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                       min_size=1, max_size=20)
header_values = rarely(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40).map(
        str.encode),
    st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b))
# Names a SIMRS or an attacker might send, and random ones.
header_names = st.one_of(st.sampled_from([
    "Idempotency-Key", "Content-Type", "Accept", "Cookie", "X-Api-Key", "X-Original-URL",
    "X-Rewrite-URL", "X-Forwarded-Host", "X-Forwarded-For", "Host", "Expect", "Upgrade",
    "Content-Encoding", "Accept-Encoding", "X-HTTP-Method-Override", "Authorization"]),
    header_names)
extra_headers = st.lists(st.tuples(header_names.map(str.encode), header_values), max_size=6)


def row_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
    finally:
        conn.close()


def has_row(db: Path, request_id: str) -> bool:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT 1 FROM requests WHERE id = ?",
                            (request_id,)).fetchone() is not None
    finally:
        conn.close()


def plain_expect_refusal(answer: Answer) -> bool:
    """aiohttp's plain-text 417 for an ``Expect`` it does not know: the admin port's
    answer (the SIMRS port's is in an envelope, see gateway.expect_continue)."""
    return answer.status == 417 and answer.headers.get(
        "content-type", "").startswith("text/plain")


def assert_clear_answer(answer: Answer, *, allow_redirect: bool = False) -> None:
    """A clear 4xx or a 2xx (3xx on the admin UI's login redirects), never a 5xx, and
    no traceback text."""
    assert answer.status is not None, "closed without an answer"
    ok = range(200, 400) if allow_redirect else range(200, 300)
    assert answer.status in ok or 400 <= answer.status < 500, (answer.status, answer.text)
    for marker in TRACEBACK_MARKERS:
        assert marker not in answer.text, (answer.status, answer.text[:2000])


def envelope(answer: Answer) -> dict[str, Any]:
    """The answer's BPJS envelope (metaData or metadata); fails when there is none."""
    try:
        doc = json.loads(answer.body)
    except ValueError as exc:
        raise AssertionError(f"not JSON: {answer.status} {answer.text[:300]!r}") from exc
    assert isinstance(doc, dict), doc
    meta = doc.get("metaData", doc.get("metadata"))
    assert isinstance(meta, dict) and "code" in meta and "message" in meta, doc
    return doc


def resolved(path: str) -> str:
    """The path an upstream that decodes (once more) and resolves dot segments would
    serve: what "under the configured target" must hold for."""
    decoded = unquote(unquote(path.replace("\\", "/")))
    # One leading '/': normpath keeps a leading '//' (POSIX), which no server does.
    return posixpath.normpath("/" + decoded.replace("\x00", "").lstrip("/"))


def under_prefix(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")
