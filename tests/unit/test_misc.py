"""Tenang's own BPJS-shaped answers, request ids and masking of user keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy import ids
from proxy.bpjs import signature
from proxy.config import UpstreamConfig
from proxy.delivery.upstream import outgoing_headers
from proxy.ids import new_request_id, next_request_id
from proxy.intake.answers import QUEUED_MESSAGE, envelope, queued
from proxy.lifecycle import Status
from proxy.observe.redact import mask, masked_headers
from proxy.store.records import StoredRequest

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# --- envelopes --------------------------------------------------------------------------


def test_vclaim_uses_metaData_with_a_string_code() -> None:
    doc = json.loads(envelope("vclaim", 503, "Tidak tersedia"))
    assert doc == {"metaData": {"code": "503", "message": "Tidak tersedia"}, "response": None}


@pytest.mark.parametrize("preset", ["antrean", "aplicare", "generic"])
def test_antrean_aplicare_generic_use_metadata_with_a_number(preset: str) -> None:
    doc = json.loads(envelope(preset, 503, "Tidak tersedia"))
    assert doc == {"metadata": {"code": 503, "message": "Tidak tersedia"}, "response": None}


def test_icare_uses_metaData_with_a_number() -> None:
    doc = json.loads(envelope("icare", 202, "x"))
    assert doc == {"metaData": {"code": 202, "message": "x"}, "response": None}


def test_no_preset_carries_both_spellings() -> None:
    doc = json.loads(envelope(None, 404, "no upstream"))
    assert doc == {"metaData": {"code": "404", "message": "no upstream"},
                   "metadata": {"code": 404, "message": "no upstream"},
                   "response": None}


def test_envelope_keeps_non_ascii_text() -> None:
    raw = envelope("antrean", 201, "Pasien tidak ditemukan: Zoë Müller")
    assert "ë".encode() in raw
    assert json.loads(raw)["metadata"]["message"] == "Pasien tidak ditemukan: Zoë Müller"


def test_queued_answer_is_a_202_in_the_service_envelope_naming_the_request() -> None:
    rid = "01JABCDEFGHJKMNPQRSTVWXYZ0"
    message = QUEUED_MESSAGE.format(id=rid)
    assert message.endswith(f"id {rid}")
    assert json.loads(queued("vclaim").render(rid)) == {
        "metaData": {"code": "202", "message": message}, "response": None}
    assert json.loads(queued("antrean").render(rid)) == {
        "metadata": {"code": 202, "message": message}, "response": None}


# --- request ids ------------------------------------------------------------------------


def _decode_ms(request_id: str) -> int:
    value = 0
    for ch in request_id[:10]:
        value = value * 32 + CROCKFORD.index(ch)
    return value


def test_request_id_is_a_26_char_crockford_ulid() -> None:
    rid = new_request_id()
    assert len(rid) == 26
    assert set(rid) <= set(CROCKFORD)


def test_request_ids_are_unique() -> None:
    ids = {new_request_id(1_700_000_000.0) for _ in range(1_000)}
    assert len(ids) == 1_000


def test_request_id_encodes_the_millisecond_time() -> None:
    assert _decode_ms(new_request_id(1_700_000_000.5)) == 1_700_000_000_500


def test_next_request_ids_keep_arrival_order_within_a_millisecond_and_a_clock_step_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_last", 0)  # as in a fresh process (restored afterwards)
    now = 1_000_000_000.0
    same_ms = [next_request_id(now) for _ in range(1_000)]
    assert sorted(same_ms) == same_ms and len(set(same_ms)) == 1_000
    after_step_back = next_request_id(now - 1.0)  # NTP stepped the clock back a second
    assert after_step_back > same_ms[-1]
    later = next_request_id(now + 60)
    assert later > after_step_back and _decode_ms(later) == 1_000_000_060_000


def test_request_ids_sort_by_time() -> None:
    times = [1_000.0, 1_000.001, 1_000.5, 1_700_000_000.0, 1_700_000_000.002, 4_000_000_000.0]
    ids = [new_request_id(t) for t in times]
    assert sorted(ids) == ids
    assert sorted(reversed(ids)) == ids


def test_request_ids_made_now_sort_after_older_ones() -> None:
    older = new_request_id(1_700_000_000.0)
    assert new_request_id() > older


# --- masking ----------------------------------------------------------------------------


def test_mask_hides_all_but_a_short_prefix() -> None:
    key = "a1b2c3d4e5f6g7h8i9j0"
    masked = mask(key)
    assert masked == "a1b2…"
    assert key[4:] not in masked


@pytest.mark.parametrize("key", ["", "abc", "12345678"])
def test_mask_hides_short_keys_entirely(key: str) -> None:
    assert mask(key) == "…"


def test_masked_headers_hide_user_key_and_authorization_only() -> None:
    headers = (("X-cons-id", "12345"), ("user_key", "a1b2c3d4e5f6g7h8"),
               ("X-User-Key", "zzzzyyyyxxxx"), ("Authorization", "Bearer sekret-token"),
               ("Content-Type", "application/json"))
    shown = dict(masked_headers(headers))
    assert shown["X-cons-id"] == "12345"
    assert shown["Content-Type"] == "application/json"
    assert shown["user_key"] == "a1b2…"
    assert shown["X-User-Key"] == "zzzz…"
    assert "sekret-token" not in shown["Authorization"]


@pytest.mark.parametrize("name", [
    "Cookie", "X-Api-Key", "X-Auth-Token", "X-Session-Id", "Proxy-Authorization",
    "X-Signature", "X-Password", "X-Client-Secret", "X-Credentials", "apikey"])
def test_masked_headers_hide_anything_credential_like(name: str) -> None:
    [(_, shown)] = masked_headers(((name, "PHPSESSID=9a8b7c6d5e4f"),))
    assert "9a8b7c6d5e4f" not in shown


@pytest.mark.parametrize("name", ["Idempotency-Key", "X-Rs-Kode", "Accept", "X-timestamp"])
def test_masked_headers_keep_identifiers(name: str) -> None:
    assert masked_headers(((name, "value-0123456789"),)) == [(name, "value-0123456789")]


def test_masked_headers_match_names_case_insensitively_and_keep_order() -> None:
    headers = (("USER_KEY", "a1b2c3d4e5f6g7h8"), ("x-timestamp", "1700000000"))
    assert masked_headers(headers) == [("USER_KEY", "a1b2…"), ("x-timestamp", "1700000000")]


# --- re-signing ---------------------------------------------------------------------------


def _stored(headers: tuple[tuple[str, str], ...]) -> Any:
    return StoredRequest(id="r1", upstream="antrean", method="POST", path="/antreanrs/x",
                         query="", headers=headers, body=b"{}", received_at=0.0,
                         status=Status.IN_FLIGHT, attempts=0, next_attempt_at=0.0,
                         updated_at=0.0, reason=None)


def test_each_attempt_is_re_signed_with_a_fresh_timestamp() -> None:
    up = UpstreamConfig(name="antrean", prefix="/antreanrs", target="http://x",
                        preset="antrean", cons_id="1234", secret="rahasia")
    old = _stored((("X-Cons-ID", "1234"), ("x-timestamp", "1600000000"),
                   ("user_key", "uk"), ("Content-Type", "application/json")))
    out = outgoing_headers(up, old, 1_700_000_123.9)
    assert out.getall("X-timestamp") == ["1700000123"]
    assert out.getall("X-cons-id") == ["1234"]
    assert out["X-signature"] == signature.sign("1234", "rahasia", "1700000123")
    assert out["user_key"] == "uk" and out["Content-Type"] == "application/json"


def test_without_a_secret_the_original_headers_go_out_unchanged() -> None:
    up = UpstreamConfig(name="antrean", prefix="/antreanrs", target="http://x",
                        preset="antrean", user_key="from-config")
    old = _stored((("X-Cons-ID", "1234"), ("X-Timestamp", "1600000000")))
    out = outgoing_headers(up, old, 1_700_000_000.0)
    assert out["X-Timestamp"] == "1600000000" and "X-signature" not in out
    assert out["user_key"] == "from-config"  # filled in only when the request had none
