"""The BPJS service day: a calendar day in Asia/Jakarta (WIB).

WIB is UTC+7 with no daylight saving since 1964, so a fixed offset is exact and needs no
tz database on the host.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

WIB = timezone(timedelta(hours=7), "WIB")


def end_of_service_day(ts: float) -> float:
    """The first instant of the WIB day after the one containing ``ts``."""
    day = datetime.fromtimestamp(ts, WIB).date()
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), WIB).timestamp()
