"""BPJS signing and response crypto, checked against independent references.

``data/bpjs_js_vectors.json`` was produced by lz-string.js 1.5.0 and Node's OpenSSL AES
(the way BPJS's JavaScript clients decrypt), not by this code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.bpjs import crypto, lz, signature

VECTORS = json.loads((Path(__file__).parent / "data" / "bpjs_js_vectors.json").read_text())


def test_trustmark_hmac_test_vector() -> None:
    # TrustMark catalog: HMAC-SHA256(key "bbb", message "aaa").
    assert signature.hmac_b64("bbb", "aaa") == "20BKS3PWnD3XU4JbSSZvVlGi2WWnDa8Sv9uHJ+wsELA="


def test_signature_covers_cons_id_and_timestamp_joined_by_ampersand() -> None:
    assert signature.sign("1234", "rahasia", "1616559330") == signature.hmac_b64(
        "rahasia", "1234&1616559330")
    assert signature.verify("1234", "rahasia", "1616559330",
                            signature.sign("1234", "rahasia", "1616559330"))
    assert not signature.verify("1234", "rahasia", "1616559331",
                                signature.sign("1234", "rahasia", "1616559330"))


def test_signed_headers_use_whole_utc_seconds() -> None:
    headers = signature.signed_headers("1234", "s", 1_700_000_000.987)
    assert headers["X-timestamp"] == "1700000000"
    assert headers["X-cons-id"] == "1234"
    assert headers["X-signature"] == signature.sign("1234", "s", "1700000000")


@pytest.mark.parametrize("case", VECTORS["lzstring"], ids=lambda c: c["plain"][:12] or "empty")
def test_lzstring_matches_the_javascript_original(case: dict[str, str]) -> None:
    assert lz.compress(case["plain"]) == case["encoded"]
    assert lz.decompress(case["encoded"]) == case["plain"]


@pytest.mark.parametrize("case", VECTORS["aes"], ids=lambda c: c["timestamp"])
def test_decrypts_what_a_javascript_implementation_encrypted(case: dict[str, str]) -> None:
    text = crypto.decrypt_text(case["cipher"], case["cons_id"], case["secret"],
                               case["timestamp"])
    assert text == case["plain"]
    assert crypto.encrypt_text(case["plain"], case["cons_id"], case["secret"],
                               case["timestamp"]) == case["cipher"]


def test_another_timestamp_does_not_decrypt() -> None:
    case = VECTORS["aes"][1]
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt_text(case["cipher"], case["cons_id"], case["secret"], "1700000001")


@pytest.mark.parametrize("garbage", ["", "not base64 !", "QUJD", "A" * 24])
def test_garbage_is_a_decrypt_error_not_a_crash(garbage: str) -> None:
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt_response(garbage, "1", "s", "0")


def test_lz_garbage_is_an_lz_error() -> None:
    with pytest.raises(lz.LZError):
        lz.decompress("!!!")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(value=JSON, cons_id=st.text(min_size=1, max_size=8),
       secret=st.text(min_size=1, max_size=16),
       ts=st.integers(0, 4_000_000_000).map(str))
def test_round_trip_any_json_including_non_ascii(value: Any, cons_id: str, secret: str,
                                                 ts: str) -> None:
    wire = crypto.encrypt_response(value, cons_id, secret, ts)
    assert crypto.decrypt_response(wire, cons_id, secret, ts) == value


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_lz_round_trip_any_text(text: str) -> None:
    assert lz.decompress(lz.compress(text)) == text
