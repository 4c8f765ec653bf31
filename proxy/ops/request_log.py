"""Listing the request log: the one service the admin JSON API, the admin UI's log page
and its CSV export all list through, so every front end filters by the same things.

A filter is read from query parameters (``status``, ``upstream``, ``endpoint``, ``from``,
``to``, ``q``; pages by ``limit`` and ``cursor``); each reader raises ``BadParameter``
naming the parameter, which the API answers as 400 and the UI shows next to the field.
Pages come from the store's ``find_requests``: newest first, keyset-paginated by id.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from proxy.bpjs.service_day import WIB
from proxy.lifecycle import Status
from proxy.ops.admin_input import ApiError, whole_number
from proxy.store.protocols import RequestLog
from proxy.store.records import RequestFilter, RequestPage

FILTER_PARAMETERS = ("status", "upstream", "endpoint", "from", "to", "q")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_TEXT = 200  # longer filter text is no search term anyone types
DAY_S = 86_400

# dd/mm/yyyy as Indonesians write it (also with '-' or '.'), and ISO yyyy-mm-dd, which
# programs send and links and bookmarks from before kept in their ``from``/``to``.
_DMY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", re.ASCII)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)


class BadParameter(ApiError):
    """A query parameter the listing cannot use: 400, and which one (``parameter``)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(400, f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Query:
    """One listing call: what to match, how many, and where the previous page ended."""

    filter: RequestFilter
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def parse_day(text: str) -> date | None:
    """``28/11/2026`` (or ISO ``2026-11-28``) as a date; None when it is not a real day."""
    text = text.strip()
    if m := _DMY.fullmatch(text):
        day, month, year = (int(g) for g in m.groups())
    elif m := _ISO.fullmatch(text):
        year, month, day = (int(g) for g in m.groups())
    else:
        return None
    try:
        return date(year, month, day)
    except ValueError:  # 31/02, month 13, year 0
        return None


def wib_midnight(day: date) -> float:
    """The start of ``day`` in Jakarta (WIB) as epoch seconds: the log's days are WIB days."""
    return datetime(day.year, day.month, day.day, tzinfo=WIB).timestamp()


def read_status(raw: str) -> Status | None:
    if not raw:
        return None
    try:
        return Status(raw)
    except ValueError:
        raise BadParameter("status", f"must be one of {', '.join(s.value for s in Status)}"
                           ) from None


def read_day(parameter: str, raw: str) -> date | None:
    if not raw:
        return None
    day = parse_day(raw)
    if day is None:
        raise BadParameter(parameter, f"{raw!r} is not a day (dd/mm/yyyy or yyyy-mm-dd)")
    return day


def day_range(first: date | None, last: date | None) -> tuple[float | None, float | None]:
    """Days ``first``..``last`` (both included, WIB) as [from, to) epoch seconds."""
    start = None if first is None else wib_midnight(first)
    end = None if last is None else wib_midnight(last) + DAY_S
    return start, end


def read_text(parameter: str, raw: str) -> str | None:
    if len(raw) > MAX_TEXT:
        raise BadParameter(parameter, f"longer than {MAX_TEXT} characters")
    return raw or None


def read_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    limit = whole_number(raw, 1, MAX_LIMIT)
    if limit is None:
        raise BadParameter("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def read_filter(params: Mapping[str, str]) -> RequestFilter:
    """The filter the query parameters ask for, every value checked (``BadParameter``).
    ``endpoint`` is a prefix of endpoint names (``vclaim.sep``); ``from``/``to`` are WIB
    days, both included; ``q`` is text in the path, query or body."""
    value = {k: params.get(k, "").strip() for k in FILTER_PARAMETERS}
    first, last = read_day("from", value["from"]), read_day("to", value["to"])
    if first is not None and last is not None and last < first:
        raise BadParameter("to", "is a day before from")
    received_from, received_to = day_range(first, last)
    return RequestFilter(
        status=read_status(value["status"]), upstream=read_text("upstream", value["upstream"]),
        endpoint=read_text("endpoint", value["endpoint"]), received_from=received_from,
        received_to=received_to, text=read_text("q", value["q"]))


def read_query(params: Mapping[str, str]) -> Query:
    """A whole listing call from query parameters: filter, ``limit`` and ``cursor``."""
    return Query(read_filter(params), read_limit(params.get("limit")),
                 params.get("cursor") or None)


async def list_page(store: RequestLog, query: Query) -> RequestPage:
    """One page, newest first. A page can be short (even empty) and still have a
    ``next_cursor`` when ``capped``: the scan window ended before the page filled."""
    return await store.find_requests(query.filter, limit=query.limit, cursor=query.cursor)


async def every_page(store: RequestLog, f: RequestFilter, *, max_rows: int,
                     page_size: int = MAX_LIMIT) -> AsyncIterator[RequestPage]:
    """Every matching request, page by page, newest first, at most ``max_rows`` in all."""
    cursor, listed = None, 0
    while listed < max_rows:
        page = await list_page(store, Query(f, min(page_size, max_rows - listed), cursor))
        yield page
        listed += len(page.items)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
