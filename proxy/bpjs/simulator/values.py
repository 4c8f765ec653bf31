"""Lenient readers for request values: SIMRS clients send numbers as strings and the
other way round, so handlers read fields through these instead of trusting JSON types."""

from __future__ import annotations

from datetime import date
from typing import Any

from proxy.bpjs.simulator.settings import jakarta_now


def text(value: Any) -> str:
    """The value as stripped text; missing (None) is empty."""
    return "" if value is None else str(value).strip()


def dig(doc: Any, *keys: str) -> Any:
    """``doc[k1][k2]...``, or None when any level is missing or not an object."""
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def as_int(value: Any) -> int | None:
    """An int or a string of digits; anything else (bool included) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def parse_date(value: str) -> date | None:
    """A ``yyyy-MM-dd`` date, or None."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def wib(epoch_s: float) -> str:
    """Antrean's time display: ``dd-MM-yyyy HH:mm:ss WIB``."""
    return jakarta_now(epoch_s).strftime("%d-%m-%Y %H:%M:%S WIB")
