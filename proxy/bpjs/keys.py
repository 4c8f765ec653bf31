"""Values of body fields that identify a request's business object (ordering, dedup).

The body is the SIMRS's and may be anything. A body that is not JSON (or not UTF-8) is
simply not keyed and is stored as bytes. A JSON body the route needs a key from, but
which cannot be keyed honestly, raises ``UnkeyableBody`` with a message for the SIMRS:
nested too deeply to parse, or a key field holding text no store or BPJS can take (an
unpaired UTF-16 surrogate, ``"\\ud800"``).
"""

from __future__ import annotations

import json
from typing import Any

_DECODER = json.JSONDecoder()
TOO_DEEP = "JSON bersarang terlalu dalam / JSON body nested too deeply to read"


class UnkeyableBody(ValueError):
    """A JSON body whose keys cannot be read; ``str()`` is the reason for the SIMRS."""


def _find(doc: Any, name: str) -> Any:
    """``name`` at the top level, or inside the ``request`` wrapper VClaim uses."""
    if not isinstance(doc, dict):
        return None
    if name in doc:
        return doc[name]
    inner = doc.get("request")
    if isinstance(inner, dict):
        for value in (inner, *inner.values()):
            if isinstance(value, dict) and name in value:
                return value[name]
    return None


def parse_json(raw: bytes) -> Any:
    """The parsed body, or None when it is not JSON text (or not UTF-8).

    UnkeyableBody when it nests too deeply to parse: json's C scanner stops near the
    interpreter's recursion limit (some hundreds of levels, far beyond any BPJS body)
    with a RecursionError, which is the SIMRS's fault, not Tenang's."""
    try:
        if raw[:1] == b"{" and raw[1:2] != b"\x00":
            # What json.loads does for such bytes (detect_encoding finds UTF-8 when the
            # first two bytes are not NUL), without its checks: bodies are parsed per request.
            return _DECODER.decode(raw.decode("utf-8", "surrogatepass"))
        return json.loads(raw)
    except RecursionError:
        raise UnkeyableBody(TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError):
        return None


_UNPARSED = object()


class Body:
    """A request body parsed once, however many keys are read from it."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._doc: Any = _UNPARSED

    @property
    def doc(self) -> Any:
        if self._doc is _UNPARSED:
            self._doc = parse_json(self.raw)
        return self._doc


def _text(name: str, value: Any) -> str:
    text = str(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UnkeyableBody(f"Field {name} tidak valid / field {name!r} holds an "
                                "unpaired UTF-16 surrogate (e.g. \\ud800), not text") from None
    return text


def scalar(doc: Any, name: str) -> str | None:
    """Field ``name`` as text (top level or in the ``request`` wrapper); None when it is
    absent or not a scalar."""
    value = _find(doc, name)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def key_of(body: bytes | Body, fields: tuple[str, ...]) -> str | None:
    """``"kodebooking=KB1"`` (fields joined by ``&``), or None when any field is absent:
    a request that cannot be keyed is never ordered or merged by guesswork."""
    if not fields:
        return None
    doc = (body if isinstance(body, Body) else Body(body)).doc
    if doc is None:
        return None
    parts = []
    for name in fields:
        value = scalar(doc, name)
        if value is None:
            return None
        parts.append(f"{name}={_text(name, value)}")
    return "&".join(parts)
