"""Values of body fields that identify a request's business object (ordering, dedup)."""

from __future__ import annotations

import json
from typing import Any


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


_UNPARSED = object()


class Body:
    """A request body parsed once, however many keys are read from it."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._doc: Any = _UNPARSED

    @property
    def doc(self) -> Any:
        if self._doc is _UNPARSED:
            try:
                self._doc = json.loads(self.raw)
            except (ValueError, UnicodeDecodeError):
                self._doc = None
        return self._doc


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
        value = _find(doc, name)
        if value is None or isinstance(value, dict | list):
            return None
        parts.append(f"{name}={value}")
    return "&".join(parts)
