"""The request-log filter form: query string <-> ``RequestFilter``, with the form's own
values kept for redisplay and for links to the next page, the CSV and the bulk retry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.fmt import day_text
from admin_ui.i18n import Translator
from admin_ui.labels import endpoint_by_label, endpoint_label
from proxy.app_keys import BREAKERS
from proxy.bpjs.service_day import WIB
from proxy.ops.admin_input import whole_number
from proxy.ops.request_log import (
    FILTER_PARAMETERS,
    MAX_TEXT,
    BadParameter,
    day_range,
    read_day,
    read_status,
)
from proxy.store.records import RequestFilter

FIELDS = FILTER_PARAMETERS
PAGE_SIZES = (25, 50, 100)


@dataclass(frozen=True, slots=True)
class FilterForm:
    values: dict[str, str]
    filter: RequestFilter
    errors: list[str] = field(default_factory=list)  # message keys
    invalid: frozenset[str] = frozenset()  # fields shown as typed but not applied

    def query(self, **extra: str) -> str:
        """The filter as a query string (empty and invalid fields dropped), plus ``extra``."""
        pairs = {k: v for k, v in self.values.items() if v and k not in self.invalid} | {
            k: v for k, v in extra.items() if v}
        return urlencode(pairs)


def parse(query: Mapping[str, str], upstreams: list[str]) -> FilterForm:
    """The listing service's readers (``request_log``), one field at a time: an unknown
    or malformed value is dropped with an error key, never guessed, and the rest of the
    filter still applies."""
    values = {k: query.get(k, "").strip()[:MAX_TEXT] for k in FIELDS}
    errors: list[str] = []
    status = None
    try:
        status = read_status(values["status"])
    except BadParameter:
        errors.append("filter.bad_status")
        values["status"] = ""
    if values["upstream"] and values["upstream"] not in upstreams:
        errors.append("filter.bad_upstream")
        values["upstream"] = ""
    if values["endpoint"]:
        values["endpoint"] = endpoint_by_label(values["endpoint"]) or values["endpoint"]
    received_from, received_to, invalid = _dates(values, errors)
    f = RequestFilter(status=status, upstream=values["upstream"] or None,
                      endpoint=values["endpoint"] or None, received_from=received_from,
                      received_to=received_to, text=values["q"] or None)
    return FilterForm(values, f, errors, invalid)


def _dates(values: dict[str, str], errors: list[str]
           ) -> tuple[float | None, float | None, frozenset[str]]:
    """The day range as WIB epoch seconds [from 00:00, day after ``to`` 00:00). A good
    date is redisplayed as dd/mm/yyyy; a bad one stays as typed, to be corrected, and is
    left out of the filter and of every link the page makes."""
    days: dict[str, date | None] = {"from": None, "to": None}
    invalid = set()
    for key in days:
        try:
            day = read_day(key, values[key])
        except BadParameter:
            errors.append("filter.bad_" + key)
            invalid.add(key)
            continue
        if day is not None:
            values[key] = day_text(day)
            days[key] = day
    start, end = day_range(days["from"], days["to"])
    if start is not None and end is not None and end <= start:
        errors.append("filter.bad_range")
    return start, end, frozenset(invalid)


def page_size(raw: str | None) -> int:
    size = whole_number(raw or "")
    return size if size in PAGE_SIZES else PAGE_SIZES[1]


def upstream_names(request: web.Request) -> list[str]:
    """The configured upstreams, in config order."""
    breakers = request.app[BREAKERS]
    return list(breakers)


def filter_words(f: RequestFilter, t: Translator) -> list[tuple[str, str]]:
    """A stored filter as the form's labels and values (a bulk job's page): statuses and
    endpoints in words, days as dd/mm/yyyy WIB."""
    out: list[tuple[str, str]] = []
    if f.status is not None:
        out.append((t("bulk.field.status"), t("status." + f.status.value)))
    if f.upstream:
        out.append((t("bulk.field.upstream"), f.upstream))
    if f.endpoint:
        out.append((t("bulk.field.endpoint"), endpoint_label(t, f.endpoint)))
    if f.received_from is not None:
        out.append((t("bulk.field.from"), _wib_day(f.received_from)))
    if f.received_to is not None:  # exclusive: the day before is the last one shown
        out.append((t("bulk.field.to"), _wib_day(f.received_to - 1)))
    if f.text:
        out.append((t("bulk.field.q"), f.text))
    return out


def _wib_day(ts: float) -> str:
    return day_text(datetime.fromtimestamp(ts, WIB).date())
