"""Patient identifiers in stored requests, masked for display: NIK, BPJS card numbers
(noKartu) and phone numbers keep only their last four digits (``*********7890``).

Display only: the stored bytes never change (``proxy.ops.disclosure`` decides who is
shown a masked copy). Stored bodies are untrusted, so nothing here raises on odd input.

Where identifiers are found:

- in parsed JSON, the value of every field BPJS (or a SIMRS) names an identifier
  (``nik``, ``noKartu``, ``nomorkartu``, ``noTelp``, ``nohp``, ``noidentitas``, iCare's
  ``param``...; compared ignoring case, ``_`` and ``-``), at any depth, whether a string,
  a number or nested. Other strings go through the free-text rules; a number elsewhere
  is masked only when it has the 13 or 16 digits of a card number or NIK. Fields that
  carry a business key or a time (``kodebooking``, ``noSep``, ``waktu``...) are left
  alone even when they look like one (a kodebooking may well be 16 digits).
- in free text (bodies that are not JSON, paths, query strings, reasons, errors,
  headers): ``name=value`` / ``"name": value`` / ``name/value`` for the same names (so
  ``/Peserta/nokartu/{card}/...``, ``?noKartu=...``), a number after ``/Peserta/``, any
  run of exactly 13 or 16 digits, and Indonesian mobile numbers (``08...``, ``+62 8...``,
  ``62 8...``, with or without spaces and dashes).
"""

from __future__ import annotations

import json
import re
from typing import Any

from proxy.bpjs.keys import UnkeyableBody, parse_json

MASK = "*"
SHOWN_DIGITS = 4

_PREFIXES = ("no", "nomor", "nmr")
_STEMS = ("kartu", "ka", "kapst", "kartubpjs", "kartujkn",  # the BPJS card
          "nik", "ktp", "identitas",  # the national identity number
          "telp", "tlp", "telepon", "hp", "handphone", "ponsel", "wa")  # phones
_BARE = ("nik", "telp", "telepon", "handphone", "ponsel", "phone", "phonenumber",
         "mobile", "mobilephone", "param")  # param: iCare's "noKartu or NIK"
IDENTIFIER_FIELDS = frozenset({p + s for p in _PREFIXES for s in _STEMS} | set(_BARE))
# Business keys and times, never patient identifiers however many digits they have.
NOT_IDENTIFIERS = frozenset({
    "kodebooking", "nosep", "norujukan", "nomorreferensi", "nosuratkontrol", "nospri",
    "taskid", "waktu", "estimasidilayani", "tanggalperiksa", "tglsep", "nomorantrean",
    "angkaantrean"})


def field_kind(name: str) -> str:
    """``"identifier"``, ``"key"`` (left alone) or ``""`` (free text rules apply)."""
    norm = name.lower().replace("_", "").replace("-", "")
    if norm in IDENTIFIER_FIELDS:
        return "identifier"
    return "key" if norm in NOT_IDENTIFIERS else ""


def mask_digits(text: str) -> str:
    """Every digit but the last four replaced by ``*``; other characters kept."""
    hide = sum(c.isdigit() for c in text) - SHOWN_DIGITS
    out = []
    for c in text:
        if hide > 0 and c.isdigit():
            out.append(MASK)
            hide -= 1
        else:
            out.append(c)
    return "".join(out)


_FREE_TEXT_BARE = tuple(b for b in _BARE if b != "param")  # a "param" in text is any
_NAME = "|".join(sorted({*(f"(?:{p})[_.\\- ]?{s}" for p in _PREFIXES for s in _STEMS),
                         *_FREE_TEXT_BARE}, key=len, reverse=True))
# A name, a separator (quotes, ':', '=', '/' or spaces), then digits with the spaces,
# dashes, dots and brackets phone numbers are written with. Possessive quantifiers: a
# name followed by a long run of spaces costs one pass, not a backtrack per space.
_NAMED = re.compile(rf"(?<![A-Za-z0-9])(?:{_NAME})(?![A-Za-z0-9])"
                    r"[\"']?+\s*+[:=/]?+\s*+[\"']?+(?P<value>\+?\d[\d\-.() ]*+)",
                    re.IGNORECASE)
_PESERTA = re.compile(r"(?<![A-Za-z0-9])peserta/(?P<value>\d++)", re.IGNORECASE)
_RUN = re.compile(r"(?<!\d)(?:\d{16}|\d{13})(?!\d)")
_PHONE = re.compile(r"(?<!\d)(?:\+62|62|0)[ \-]?8\d{1,3}(?:[ \-]?\d{2,4}){1,3}(?!\d)")
_MIN_PHONE_DIGITS = 9


def _value(m: re.Match[str]) -> str:
    value = m.group("value")
    core = value.rstrip("-.() ")  # trailing separators belong to the text around it
    before = m.group(0)[:m.start("value") - m.start()]
    return before + mask_digits(core) + value[len(core):]


def _phone(m: re.Match[str]) -> str:
    text = m.group(0)
    return mask_digits(text) if sum(c.isdigit() for c in text) >= _MIN_PHONE_DIGITS else text


def mask_text(text: str) -> str:
    """Free text with the identifiers it names or looks like masked."""
    if not any(c.isdigit() for c in text):
        return text
    text = _PESERTA.sub(_value, _NAMED.sub(_value, text))
    text = _RUN.sub(lambda m: mask_digits(m.group(0)), text)
    return _PHONE.sub(_phone, text)


def _identifier(value: Any) -> Any:
    """A value of an identifier field, every digit in it but the last four hidden."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return mask_digits(value)
    if isinstance(value, int | float):
        shown = mask_digits(str(value))
        return value if shown == str(value) else shown  # 4 digits or fewer: nothing hidden
    if isinstance(value, dict):
        return {mask_text(str(k)): _identifier(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_identifier(v) for v in value]
    return value


def mask_document(doc: Any) -> Any:
    """Parsed JSON with its identifiers masked (a copy; ``doc`` is not changed)."""
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            kind = field_kind(str(k))
            if kind == "identifier":
                out[mask_text(str(k))] = _identifier(v)
            elif kind == "key" and not isinstance(v, dict | list):
                out[str(k)] = v
            else:
                out[mask_text(str(k))] = mask_document(v)
        return out
    if isinstance(doc, list):
        return [mask_document(v) for v in doc]
    if isinstance(doc, str):
        return mask_text(doc)
    if isinstance(doc, int) and not isinstance(doc, bool) and len(str(abs(doc))) in (13, 16):
        return mask_digits(str(doc))
    return doc


def mask_body(raw: bytes) -> bytes:
    """A stored body with its identifiers masked: parsed JSON is masked field by field
    and written out again (compact, UTF-8); anything else is masked as text, its bytes
    that are not UTF-8 kept as they were."""
    try:
        doc = parse_json(raw)
    except UnkeyableBody:  # nested too deeply to parse: mask it as text
        doc = None
    if doc is not None:
        try:
            # backslashreplace: a lone surrogate ("\ud800") comes out as its JSON escape.
            return json.dumps(mask_document(doc), ensure_ascii=False).encode(
                "utf-8", "backslashreplace")
        except (RecursionError, ValueError):
            pass
    return mask_text(raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
