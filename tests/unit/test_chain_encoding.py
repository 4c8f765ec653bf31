"""The hash chain's canonical encoding (proxy/store/chain.py): the record-specific
encoders equal the reference ``encode`` (sorted keys), the bytes are the documented ones,
and the chain links as documented, so an auditor's own implementation agrees."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json

import pytest

from proxy.lifecycle import Verdict
from proxy.store import chain
from proxy.store.chain import GENESIS, Kind
from proxy.store.records import AttemptRecord, AuditEntry, NewRequest

REQUEST = NewRequest(
    id="01M8RX0P6SZB3HC31RGH3FR610", upstream="antrean", method="POST",
    path="/antreanrs/antrean/add", query="a=1",
    headers=(("Content-Type", "application/json"), ("X-cons-id", "12345")),
    body='{"nama": "Siti Aminah", "catatan": "ruang \u00e9 \U0001f600"}'.encode(),
    received_at=1764590400.123456, endpoint="antrean.add", ordering_key="kodebooking=KB1",
    expires_at=1764633600.0, dedup_key="ignored: it changes", coalesce_key=None)
ATTEMPT = AttemptRecord(2, 1764590401.5, 0.125, Verdict.TRANSIENT, 503, "upstream 503",
                        b"\x00\xffbusy")
AUDIT = AuditEntry(7, 1764590402.0, "siti", "cancel", REQUEST.id, "salah hari")


def test_each_record_encoding_is_the_reference_encoding() -> None:
    assert chain.request_encoding(REQUEST) == chain.encode(Kind.REQUEST, {
        "id": REQUEST.id, "upstream": "antrean", "method": "POST",
        "path": "/antreanrs/antrean/add", "query": "a=1",
        "headers": [["Content-Type", "application/json"], ["X-cons-id", "12345"]],
        "body": base64.b64encode(REQUEST.body).decode(), "received_at": 1764590400.123456,
        "endpoint": "antrean.add", "ordering_key": "kodebooking=KB1",
        "expires_at": 1764633600.0, "coalesce_key": None})
    assert chain.attempt_encoding(REQUEST.id, ATTEMPT) == chain.encode(Kind.ATTEMPT, {
        "request_id": REQUEST.id, "number": 2, "started_at": 1764590401.5,
        "duration_s": 0.125, "verdict": "transient", "http_status": 503,
        "error": "upstream 503", "response_body": base64.b64encode(b"\x00\xffbusy").decode()})
    assert chain.state_encoding(REQUEST.id, "in_flight", "pending", "upstream 503",
                                1764590401.625) == chain.encode(Kind.STATE, {
        "request_id": REQUEST.id, "from": "in_flight", "to": "pending",
        "reason": "upstream 503", "at": 1764590401.625})
    assert chain.audit_encoding(AUDIT) == chain.encode(Kind.AUDIT, {
        "id": 7, "at": 1764590402.0, "actor": "siti", "action": "cancel",
        "target": REQUEST.id, "detail": "salah hari"})


def test_the_encoding_is_ascii_json_with_sorted_keys_and_no_whitespace() -> None:
    data = chain.request_encoding(REQUEST)
    text = data.decode("ascii")  # ASCII only: everything else is a \\u escape
    assert " " not in text.replace("Siti Aminah", "")  # spaces only inside values
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
    assert doc["kind"] == "request" and "dedup_key" not in doc and "status" not in doc
    assert base64.b64decode(doc["body"]) == REQUEST.body  # the plaintext body
    assert repr(doc["received_at"]) == "1764590400.123456"
    assert text.startswith('{"body":"') and '"received_at":1764590400.123456,' in text


def test_leaves_and_heads_are_sha256_as_documented() -> None:
    links = [chain.request_link(REQUEST), chain.attempt_link(REQUEST.id, ATTEMPT),
             chain.audit_link(AUDIT)]
    assert links[0].leaf == hashlib.sha256(chain.request_encoding(REQUEST)).digest()
    entries = chain.extend(chain.ChainHead(0, GENESIS), links)
    previous = bytes(32)
    for seq, (entry, link) in enumerate(zip(entries, links, strict=True), start=1):
        assert entry.seq == seq
        assert entry.head == hashlib.sha256(previous + link.leaf).digest()
        previous = entry.head
    assert links[1].ref == f"{REQUEST.id}/2" and links[2].ref == "7"


# Values the direct encoders must write exactly as the reference does: absent fields,
# escapes (quotes, backslashes, controls, non-ASCII, beyond the BMP), integral, tiny and
# huge floats, integers where floats are usual, empty and repeated headers.
TEXTS = ["", "plain", 'a "quoted" \\ back/slash', "\x00\x1f\x7f tab\t nl\n",
         "é ü 漢字 \U0001f600", "</script>"]
NUMBERS = [0.0, -0.0, 1.0, 1764590400.123456, 1e-7, 1.7976931348623157e308, 5e-324,
           0.1 + 0.2, 12, 0, -3]


def test_the_direct_encoders_equal_the_reference_for_awkward_values() -> None:
    for text, number in itertools.product(TEXTS, NUMBERS):
        headers = ((text, text), ("X-n", str(number)), (text, text))
        for r in (dataclasses.replace(REQUEST, path=text, query=text, headers=headers,
                                      received_at=number, expires_at=number,
                                      endpoint=text, ordering_key=text, coalesce_key=text,
                                      body=text.encode()),
                  dataclasses.replace(REQUEST, endpoint=None, ordering_key=None,
                                      expires_at=None, headers=(), body=b"")):
            assert chain.request_encoding(r) == chain.encode(Kind.REQUEST, {
                "id": r.id, "upstream": r.upstream, "method": r.method, "path": r.path,
                "query": r.query, "headers": [list(p) for p in r.headers],
                "body": base64.b64encode(r.body).decode(), "received_at": r.received_at,
                "endpoint": r.endpoint, "ordering_key": r.ordering_key,
                "expires_at": r.expires_at, "coalesce_key": r.coalesce_key})
        for a in (dataclasses.replace(ATTEMPT, started_at=number, duration_s=number,
                                      error=text, response_body=text.encode()),
                  dataclasses.replace(ATTEMPT, http_status=None, error=None,
                                      response_body=None)):
            assert chain.attempt_encoding(text, a) == chain.encode(Kind.ATTEMPT, {
                "request_id": text, "number": a.number, "started_at": a.started_at,
                "duration_s": a.duration_s, "verdict": a.verdict.value,
                "http_status": a.http_status, "error": a.error,
                "response_body": None if a.response_body is None
                else base64.b64encode(a.response_body).decode()})
        for before, reason in ((text, text), (None, None)):
            assert chain.state_encoding(text, before, text, reason, number) == chain.encode(
                Kind.STATE, {"request_id": text, "from": before, "to": text,
                             "reason": reason, "at": number})
        for target, detail in ((text, text), (None, None)):
            e = AuditEntry(7, number, text, text, target, detail)
            assert chain.audit_encoding(e) == chain.encode(Kind.AUDIT, {
                "id": 7, "at": number, "actor": text, "action": text, "target": target,
                "detail": detail})


def test_a_value_json_cannot_carry_is_refused_as_by_the_reference() -> None:
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            chain.encode(Kind.STATE, {"at": bad})
        with pytest.raises(ValueError):
            chain.request_encoding(dataclasses.replace(REQUEST, received_at=bad))
        with pytest.raises(ValueError):
            chain.state_encoding("r", None, "pending", None, bad)
