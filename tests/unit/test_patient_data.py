"""Patient identifiers masked for display (issue 14, patient data): NIK, card and phone
numbers keep their last four digits, in JSON (by field name, at any depth, strings or
numbers) and in free text (bodies that are not JSON, paths, query strings, reasons);
look-alike fields and business keys stay; odd input never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.observe.patient_data import (
    IDENTIFIER_FIELDS,
    MASK,
    field_kind,
    mask_body,
    mask_digits,
    mask_document,
    mask_text,
)

NIK, CARD, PHONE = "3201012345678901", "0001234567890", "081234567890"


def masked(doc: Any) -> Any:
    return json.loads(mask_body(json.dumps(doc).encode()))


@pytest.mark.parametrize(("text", "shown"), [
    (CARD, MASK * 9 + "7890"), (NIK, MASK * 12 + "8901"), ("12345", MASK + "2345"),
    ("1234", "1234"), ("", ""), ("+62 812-3456-7890", "+** ***-****-7890"),
    ("abc", "abc")])
def test_all_but_the_last_four_digits_are_hidden(text: str, shown: str) -> None:
    assert mask_digits(text) == shown


def test_bpjs_bodies_by_field_name_at_any_depth() -> None:
    sep = {"request": {"t_sep": {"noKartu": CARD, "noTelp": PHONE, "noMR": "123456",
                                 "noSep": "0301R0011125V000042", "tglSep": "2026-11-28"}}}
    assert masked(sep) == {"request": {"t_sep": {
        "noKartu": MASK * 9 + "7890", "noTelp": MASK * 8 + "7890", "noMR": "123456",
        "noSep": "0301R0011125V000042", "tglSep": "2026-11-28"}}}
    antrean = {"kodebooking": "KB1", "nomorkartu": CARD, "nik": NIK, "nohp": PHONE,
               "norm": "0042", "taskid": 3}
    assert masked(antrean) == {"kodebooking": "KB1", "nomorkartu": MASK * 9 + "7890",
                               "nik": MASK * 12 + "8901", "nohp": MASK * 8 + "7890",
                               "norm": "0042", "taskid": 3}
    peserta = {"response": {"peserta": {"noKartu": CARD, "nik": NIK, "nama": "BUDI",
                                        "mr": {"noMR": "1", "noTelepon": PHONE}}}}
    assert masked(peserta)["response"]["peserta"] == {
        "noKartu": MASK * 9 + "7890", "nik": MASK * 12 + "8901", "nama": "BUDI",
        "mr": {"noMR": "1", "noTelepon": MASK * 8 + "7890"}}
    assert masked([{"param": CARD, "kodedokter": 31537}]) == [
        {"param": MASK * 9 + "7890", "kodedokter": 31537}], "iCare's noKartu-or-NIK"


def test_numbers_given_as_json_numbers_are_masked_too() -> None:
    assert masked({"nik": int(NIK), "noKartu": 1234567890, "nohp": 81234567890,
                   "noTelp": 8.123e10}) == {
        "nik": MASK * 12 + "8901", "noKartu": MASK * 6 + "7890",
        "nohp": MASK * 7 + "7890", "noTelp": mask_digits(str(8.123e10))}
    # A number in no identifier field is masked when it has a NIK's or a card's digits.
    assert masked({"x": int(NIK), "y": 12345}) == {"x": MASK * 12 + "8901", "y": 12345}


def test_fields_that_merely_look_similar_are_left_alone() -> None:
    doc = {"nikah": "3201012345", "kodebooking": NIK, "nomorreferensi": "0301R0011125",
           "waktu": 1_764_300_000_000, "estimasidilayani": 1_764_300_000_000,
           "hpp": "0812", "nomorantrean": "A-12", "noSep": "0301R0011125V000042",
           "true": True, "none": None}
    assert masked(doc) == doc
    for name in ("NoKartu", "no_kartu", "NO-TELP", "nik", "NIK", "noKTP", "nomor_hp"):
        assert field_kind(name) == "identifier", name
    for name in ("nikah", "kartu", "hp_rs", "nomor", "teleponrs", "nama"):
        assert field_kind(name) != "identifier", name


def test_nested_values_under_an_identifier_field_are_all_masked() -> None:
    assert masked({"noKartu": {"lama": CARD, "baru": [NIK, 42, True, None]}}) == {
        "noKartu": {"lama": MASK * 9 + "7890", "baru": [MASK * 12 + "8901", 42, True, None]}}


def test_free_text_inside_json_strings_is_masked() -> None:
    reply = {"metaData": {"code": "201", "message": f"1.Peserta NoKa {CARD} telah mendapat "
                          "Pelayanan R.Jalan Dgn No.SEP 0301R0011125V000042"},
             "response": json.dumps({"peserta": {"nik": NIK}}), NIK: "key"}
    out = masked(reply)
    assert out["metaData"]["message"] == (f"1.Peserta NoKa {MASK * 9}7890 telah mendapat "
                                          "Pelayanan R.Jalan Dgn No.SEP 0301R0011125V000042")
    assert NIK not in out["response"] and "8901" in out["response"]
    assert MASK * 12 + "8901" in out, "an identifier as a key is masked too"


@pytest.mark.parametrize(("text", "shown"), [
    ("/vclaim-rest/Peserta/nokartu/0001234567890/tglSEP/2026-11-28",
     "/vclaim-rest/Peserta/nokartu/*********7890/tglSEP/2026-11-28"),
    ("/vclaim-rest/Peserta/nik/3201012345678901/tglSEP/2026-11-28",
     "/vclaim-rest/Peserta/nik/************8901/tglSEP/2026-11-28"),
    ("/vclaim-rest/Rujukan/Peserta/000123", "/vclaim-rest/Rujukan/Peserta/**0123"),
    ("/vclaim-rest/monitoring/HistoriPelayanan/NoKartu/0001234/tglMulai/2026-11-01",
     "/vclaim-rest/monitoring/HistoriPelayanan/NoKartu/***1234/tglMulai/2026-11-01"),
    ("/antreanrs/ref/pasien/fp/identitas/nik/noidentitas/3201012345678901",
     "/antreanrs/ref/pasien/fp/identitas/nik/noidentitas/************8901"),
    ("noKartu=0001234567890&tglSEP=2026-11-28", "noKartu=*********7890&tglSEP=2026-11-28"),
    ("nohp: 0812 3456 7890, nama: Budi", "nohp: **** **** 7890, nama: Budi"),
    ("hubungi +62 812-3456-7890 segera", "hubungi +** ***-****-7890 segera"),
    ("hubungi 6281234567890", "hubungi *********7890"),
    ("NIK3201012345678901", "NIK************8901"),
    ('{"nik": "3201012345678901", broken', '{"nik": "************8901", broken'),
    ("tanggal 2026-11-28 08:30, antrean 12, noSep 0301R0011125V000042",
     "tanggal 2026-11-28 08:30, antrean 12, noSep 0301R0011125V000042"),
    ("X-Timestamp 1764300000", "X-Timestamp 1764300000"),
])
def test_free_text_paths_and_query_strings(text: str, shown: str) -> None:
    assert mask_text(text) == shown


def test_bodies_that_are_not_json() -> None:
    assert mask_body(b"nik=3201012345678901&nohp=081234567890") == (
        b"nik=************8901&nohp=********7890")
    assert mask_body(b"\xff\xfe noKartu 0001234567890 \x80") == (
        b"\xff\xfe noKartu *********7890 \x80"), "bytes that are not UTF-8 are kept"
    assert mask_body(b"") == b""
    deep = b"[" * 100_000 + b'"' + NIK.encode()
    assert NIK.encode() not in mask_body(deep), "too deep to parse: masked as text"
    assert mask_body(b'{"nik": "\\ud800' + NIK.encode() + b'"}') == (
        b'{"nik": "\\ud800' + MASK.encode() * 12 + b'8901"}'), "a lone surrogate survives"


def test_a_name_before_a_long_run_of_spaces_costs_one_pass() -> None:
    text = "nik" + " " * 200_000 + "x"
    assert mask_text(text) == text  # finishes (no catastrophic backtracking)


# --- properties -------------------------------------------------------------------------

_no_digits = st.text(max_size=30).filter(lambda s: not any(c.isdigit() for c in s))
_digits = st.text(alphabet="0123456789", min_size=5, max_size=20)
_names = st.sampled_from(sorted(IDENTIFIER_FIELDS - {"param"}))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_masked_without_error_and_masking_twice_changes_nothing(
        raw: bytes) -> None:
    once = mask_body(raw)
    assert isinstance(once, bytes)
    assert mask_body(once) == once


@settings(max_examples=300, deadline=None)
@given(_json, _names, _digits, st.sampled_from(["string", "number"]))
def test_an_identifier_anywhere_in_a_document_keeps_only_its_last_four_digits(
        doc: Any, name: str, value: str, as_: str) -> None:
    planted = {"a": [doc, {"request": {name: value if as_ == "string" else int(value)}}]}
    out = mask_document(planted)
    shown = out["a"][1]["request"][name]
    digits = value if as_ == "string" else str(int(value))
    if len(digits) > 4:
        assert shown == MASK * (len(digits) - 4) + digits[-4:]
    else:  # a number that lost its leading zeros: nothing to hide
        assert shown == int(value)
    assert mask_document(json.loads(json.dumps(out))) == out, "masking twice: no change"


@settings(max_examples=300, deadline=None)
@given(_no_digits, st.sampled_from([NIK, CARD, PHONE, "+6281234567890"]), _no_digits)
def test_an_identifier_in_free_text_is_never_shown_whole(
        before: str, identifier: str, after: str) -> None:
    out = mask_text(before + identifier + after)
    assert identifier not in out
    assert out.endswith(identifier[-4:] + after)
