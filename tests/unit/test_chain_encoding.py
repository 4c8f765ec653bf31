"""The hash chain's canonical encoding (proxy/store/chain.py): the record-specific
encoders equal the reference ``encode`` (sorted keys), the bytes are the documented ones,
and the chain links as documented, so an auditor's own implementation agrees."""

from __future__ import annotations

import base64
import hashlib
import json

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
