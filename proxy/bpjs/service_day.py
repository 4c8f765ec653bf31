"""The BPJS service day: a calendar day in Asia/Jakarta (WIB).

WIB is UTC+7 with no daylight saving since 1964, so a fixed offset is exact and needs no
tz database on the host.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

WIB = timezone(timedelta(hours=7), "WIB")


_DAY_S = 86_400.0
_last_day = (0.0, 0.0)  # (start, end) of the last day computed: intake asks per request


def end_of_service_day(ts: float) -> float:
    """The first instant of the WIB day after the one containing ``ts``."""
    global _last_day
    start, end = _last_day
    if start <= ts < end:
        return end
    day = datetime.fromtimestamp(ts, WIB).date()
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), WIB).timestamp()
    _last_day = (end - _DAY_S, end)
    return end
