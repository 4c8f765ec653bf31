"""How the UI writes times, ages and bodies: Asia/Jakarta time (WIB, UTC+7, no daylight
saving, so a fixed offset is exact and needs no tz database on the server)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime

from admin_ui.i18n import Translator
from proxy.bpjs.service_day import WIB
from proxy.ops.request_log import parse_day, wib_midnight


def wib(ts: float | None, *, seconds: bool = True) -> str:
    """``28/11/2026 14:03:05 WIB``, day first as Indonesians write it (and as the date
    filter reads it); an empty string for no time."""
    if ts is None:
        return ""
    pattern = "%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M"
    return datetime.fromtimestamp(ts, WIB).strftime(pattern) + " WIB"


def wib_iso(ts: float) -> str:
    """``2026-11-28 14:03:05`` (WIB): for files a program reads, such as the CSV export."""
    return datetime.fromtimestamp(ts, WIB).strftime("%Y-%m-%d %H:%M:%S")


def wib_clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, WIB).strftime("%H:%M")


def age(seconds: float | None, t: Translator) -> str:
    """A short duration: ``45 s``, ``12 m 5 s``, ``3 h 20 m``, ``2 d 4 h`` (localised units)."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    parts = [(s // 86_400, "unit.d"), (s % 86_400 // 3600, "unit.h"), (s % 3600 // 60, "unit.m"),
             (s % 60, "unit.s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n} {t(unit)}" for n, unit in parts[:2])


_CLOCK = re.compile(r"(\d{1,2})[:.](\d{2})", re.ASCII)  # 14:30, or 14.30 as often written


def parse_day_time(text: str) -> float | None:
    """``28/11/2026 14:30`` (a time of day in WIB, also ``2026-11-28T14:30`` as the old
    datetime-local field sent it) as epoch seconds; None when it is not one."""
    day_part, _, clock = text.strip().replace("T", " ", 1).partition(" ")
    day = parse_day(day_part)
    m = _CLOCK.fullmatch(clock.strip())
    if day is None or m is None:
        return None
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        return None
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=WIB).timestamp()


def day_text(day: date) -> str:
    """``28/11/2026``."""
    return day.strftime("%d/%m/%Y")


def day_start(text: str) -> float | None:
    """A day (``parse_day``) as midnight WIB in epoch seconds; None when not a date."""
    day = parse_day(text)
    return None if day is None else wib_midnight(day)


def next_day_start(text: str) -> float | None:
    start = day_start(text)
    return None if start is None else start + 86_400


def body_text(body: bytes | None) -> str:
    """A stored body for reading: JSON pretty-printed, other UTF-8 as is, anything else
    with its undecodable bytes replaced (shown, never interpreted: the page escapes it)."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
