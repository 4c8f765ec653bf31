"""Pure parts of the admin UI and its services: catalogs, formats, chart, filters, bulk."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from admin_ui import errors, views_bulk, views_dashboard, views_requests
from admin_ui.dashboard import CHART_BUCKET_S, SHOWN_STATUSES, card, chart, live_json
from admin_ui.filters import filter_words, page_size, parse
from admin_ui.fmt import (
    age,
    body_text,
    day_start,
    day_text,
    next_day_start,
    parse_day_time,
    wib,
    wib_iso,
)
from admin_ui.guard import safe_next
from admin_ui.i18n import LANGS, Translator, catalog
from proxy.lifecycle import OPERATOR_RETRYABLE, Status, Verdict
from proxy.ops.auth import GRANTS, Permission, Role
from proxy.ops.bulk import (
    RETRYABLE_ORDER,
    NotRetryable,
    describe,
    filter_from_json,
    filter_to_json,
    retryable_statuses,
)
from proxy.ops.operations import UpstreamOverview
from proxy.ops.request_log import parse_day
from proxy.policies.breaker import BreakerState
from proxy.store.records import AttemptBucket, RequestFilter

UI = Path(__file__).resolve().parents[2] / "admin_ui"
T0 = 1_764_300_000.0  # 2025-11-28 03:20:00 UTC = 10:20 WIB


# --- catalogs ----------------------------------------------------------------------------


def test_both_catalogs_have_the_same_keys_and_placeholders() -> None:
    ids, ens = catalog("id"), catalog("en")
    assert set(ids) == set(ens)
    for key in ids:
        assert re.findall(r"{(\w+)}", ids[key]) == re.findall(r"{(\w+)}", ens[key]), key


def _literal_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*UI.glob("templates/*"), *UI.glob("*.py")]:
        if path.name == "i18n.py":  # its docstring shows a made-up key
            continue
        text = path.read_text("utf-8")
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z_][\w.-]*)["']\s*[,)]""", text))
        keys |= set(re.findall(r"""error_page\([^)]*["']([a-z_]+\.[\w.]+)["']\)""", text))
        keys |= set(re.findall(r"""errors\.append\(["']([\w.]+)["']\)""", text))
    return keys


def _dynamic_keys() -> set[str]:
    keys = {f"status.{s.value}" for s in Status} | {f"verdict.{v.value}" for v in Verdict}
    keys |= {f"breaker.{b.value}" for b in BreakerState} | {f"role.{r.value}" for r in Role}
    keys |= {f"notice.{n}" for n in views_requests.NOTICES | views_dashboard.NOTICES}
    keys |= set(errors.MESSAGE_KEYS.values())
    keys |= {f"action.{a}" for a in ("retry", "cancel")}
    keys |= {f"bulk.field.{k}" for k in ("status", "upstream", "endpoint", "from", "to", "q")}
    keys |= {f"bulk.state.{s}" for s in ("running", "done", "failed")}
    keys |= {f"unit.{u}" for u in "dhms"}
    return keys


@pytest.mark.parametrize("lang", LANGS)
def test_every_key_the_ui_uses_is_translated(lang: str) -> None:
    used = _literal_keys() | _dynamic_keys()
    assert len(used) > 100, "the key scan found too little: is the pattern broken?"
    assert sorted(used - set(catalog(lang))) == []


def test_translator_formats_and_falls_back() -> None:
    assert Translator("en")("bulk.count", n=3) == "Dry run: 3 requests would be retried."
    assert Translator("xx").lang == "id"
    assert Translator("id")("no.such.key") == "no.such.key"


def test_catalogs_are_valid_json_files() -> None:
    for lang in LANGS:
        json.loads((UI / "locales" / f"{lang}.json").read_text("utf-8"))


# --- formats -------------------------------------------------------------------------------


def test_times_are_shown_in_jakarta_time() -> None:
    assert wib(T0) == "28/11/2025 10:20:00 WIB"
    assert wib(T0, seconds=False) == "28/11/2025 10:20 WIB"
    assert wib(None) == ""
    assert wib_iso(T0) == "2025-11-28 10:20:00", "for the CSV: sortable, unambiguous"
    assert parse_day_time("28/11/2025 10:20") == T0
    assert parse_day_time("28/11/2025 10.20") == parse_day_time("2025-11-28T10:20") == T0
    for bad in ("28/11/2025", "28/11/2025 24:00", "28/11/2025 10:60", "31/11/2025 10:00",
                "11/28/2025 10:20", "besok pagi"):
        assert parse_day_time(bad) is None, bad
    assert day_start("2025-11-28") == T0 - 10 * 3600 - 20 * 60
    assert next_day_start("2025-11-28") == T0 - 10 * 3600 - 20 * 60 + 86_400
    assert day_start("28/11/2025") == day_start("2025-11-28"), "dd/mm/yyyy, and ISO links"
    assert day_start("2025-11-28") == T0 - 10 * 3600 - 20 * 60


@pytest.mark.parametrize(("seconds", "en", "id_"), [
    (0, "0 s", "0 dtk"), (45.9, "45 s", "45 dtk"), (725, "12 min 5 s", "12 mnt 5 dtk"),
    (3 * 3600 + 1200, "3 h 20 min", "3 j 20 mnt"), (2 * 86_400 + 4 * 3600 + 5, "2 d 4 h",
                                                     "2 hr 4 j")])
def test_ages_are_short_and_localised(seconds: float, en: str, id_: str) -> None:
    assert age(seconds, Translator("en")) == en
    assert age(seconds, Translator("id")) == id_


def test_bodies_are_pretty_json_or_text() -> None:
    assert body_text(b'{"a":1,"b":"\xc3\xa9"}') == '{\n  "a": 1,\n  "b": "\u00e9"\n}'
    assert body_text(b"<b>not json</b>") == "<b>not json</b>"
    assert body_text(b"\xff\xfe") == "\ufffd\ufffd"
    assert body_text(None) == ""


@pytest.mark.parametrize(("target", "expected"), [
    ("/requests?status=dead", "/requests?status=dead"), (None, "/"), ("", "/"),
    ("https://evil.example", "/"), ("//evil.example", "/"), ("/\\evil.example", "/")])
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


# --- dashboard ----------------------------------------------------------------------------


def test_a_card_carries_every_figure_the_page_and_the_json_show() -> None:
    overview = UpstreamOverview(
        "vclaim", BreakerState.OPEN, opened_at=T0 - 60, probe_at=T0 + 30,
        counts={Status.PENDING: 7, Status.DEAD: 1}, oldest_pending_at=T0 - 125,
        last_attempt_at=T0 - 5, last_verdict=Verdict.TRANSIENT, sep_open=4)
    c = card(overview, T0, Translator("en"))
    assert c.breaker == "open"
    assert {s.value for s in SHOWN_STATUSES} <= set(c.fields)
    assert (c.fields["pending"], c.fields["dead"], c.fields["held"]) == ("7", "1", "0")
    assert c.fields["sep_open"] == "4"
    assert c.fields["oldest_pending"] == "2 min 5 s"
    assert c.fields["last_attempt"] == "28/11/2025 10:19:55 WIB · transient failure"
    assert c.fields["opened_at"] == "28/11/2025 10:19:00 WIB"
    data = live_json([c], T0)
    assert data["states"] == {"vclaim.breaker": "open"}
    assert data["fields"]["vclaim.pending"] == "7"  # type: ignore[index]


def test_the_chart_stacks_failures_on_deliveries_per_bucket() -> None:
    since = T0 - 6 * 3600
    buckets = [AttemptBucket(since, {Verdict.SUCCESS: 3, Verdict.DUPLICATE: 1}),
               AttemptBucket(since + 2 * CHART_BUCKET_S, {Verdict.TRANSIENT: 8})]
    c = chart(buckets, since, Translator("en"))
    assert len(c.bars) == 24 and c.max_count == 8
    first, second, third = c.bars[:3]
    assert first.ok_h == pytest.approx(second.ok_h + 120 * 4 / 8) and first.bad_h == 0
    assert third.bad_h == pytest.approx(120) and third.ok_h == 0
    assert first.title == "04:20 WIB: 4 delivered, 0 failed"
    assert [label for _, label in c.ticks][:2] == ["04:20", "05:20"]
    assert chart([], since, Translator("en")).max_count == 1, "no division by zero"


# --- filters and bulk --------------------------------------------------------------------


def test_the_filter_form_parses_and_rejects() -> None:
    form = parse({"status": "dead", "upstream": "vclaim", "from": "2025-11-28",
                  "to": "2025-11-28", "q": "  0001234 ", "endpoint": "vclaim.sep"},
                 ["antrean", "vclaim"])
    assert form.errors == []
    assert form.filter == RequestFilter(
        status=Status.DEAD, upstream="vclaim", endpoint="vclaim.sep",
        received_from=day_start("2025-11-28"), received_to=next_day_start("2025-11-28"),
        text="0001234")
    assert "q=0001234" in form.query(cursor="X") and "cursor=X" in form.query(cursor="X")
    assert form.values["from"] == form.values["to"] == "28/11/2025", "redisplayed dd/mm/yyyy"
    bad = parse({"status": "nope", "upstream": "evil", "from": "x"}, ["antrean"])
    assert bad.errors == ["filter.bad_status", "filter.bad_upstream", "filter.bad_from"]
    assert bad.filter == RequestFilter()
    assert page_size("100") == 100 and page_size("7") == 50 and page_size(None) == 50


@pytest.mark.parametrize(("text", "iso"), [
    ("28/11/2025", "2025-11-28"), ("1/2/2026", "2026-02-01"), ("01-02-2026", "2026-02-01"),
    ("01.02.2026", "2026-02-01"), (" 2026-02-01 ", "2026-02-01"), ("29/02/2028", "2028-02-29")])
def test_days_are_read_day_first(text: str, iso: str) -> None:
    day = parse_day(text)
    assert day is not None and day.isoformat() == iso


@pytest.mark.parametrize("text", ["31/02/2026", "13/13/2026", "29/02/2027", "00/01/2026",
                                  "2026/02/01", "11/28/2025x", "28/11/25", "kemarin",
                                  "\u0663/\u0661/\u0662\u0660\u0662\u0666", "1/1/0000"])
def test_bad_days_are_refused(text: str) -> None:
    assert parse_day(text) is None


def test_date_filter_keeps_a_bad_date_for_correction_but_never_applies_it() -> None:
    form = parse({"from": "31/02/2026", "to": "05/03/2026", "status": "dead"}, ["antrean"])
    assert form.errors == ["filter.bad_from"]
    assert form.values["from"] == "31/02/2026", "shown as typed, to be fixed"
    assert form.filter.received_from is None
    assert form.filter.received_to == day_start("06/03/2026")
    assert "from=" not in form.query() and "to=05%2F03%2F2026" in form.query()
    backwards = parse({"from": "05/03/2026", "to": "01/03/2026"}, ["antrean"])
    assert backwards.errors == ["filter.bad_range"]
    assert day_text(date(2026, 3, 5)) == "05/03/2026"


def test_a_stored_filter_in_words() -> None:
    f = parse({"status": "dead", "upstream": "antrean", "endpoint": "antrean.updatewaktu",
               "from": "28/11/2025", "to": "30/11/2025", "q": "KB-1"}, ["antrean"]).filter
    assert filter_words(f, Translator("id")) == [
        ("Status", "gagal total"), ("Layanan", "antrean"),
        ("Jenis permintaan", "Antrean: waktu tugas"), ("Dari tanggal (WIB)", "28/11/2025"),
        ("Sampai tanggal (WIB)", "30/11/2025"), ("Teks", "KB-1")]
    assert filter_words(RequestFilter(endpoint="vclaim.sep"), Translator("en")) == [
        ("Request type", "vclaim.sep")], "a prefix has no label: shown as typed"
    assert filter_words(RequestFilter(), Translator("id")) == []


def test_bulk_retry_visits_exactly_the_retryable_statuses() -> None:
    assert frozenset(RETRYABLE_ORDER) == OPERATOR_RETRYABLE
    assert retryable_statuses(RequestFilter(status=Status.HELD)) == (Status.HELD,)
    with pytest.raises(NotRetryable):
        retryable_statuses(RequestFilter(status=Status.SUCCEEDED))
    assert describe(RequestFilter()) == "all"
    assert describe(RequestFilter(status=Status.DEAD, text="KB-1", received_from=T0)) == (
        "status=dead received_from=2025-11-28T03:20:00+00:00 text='KB-1'")


def test_a_bulk_job_filter_survives_the_store_as_json() -> None:
    full = RequestFilter(status=Status.HELD, upstream="vclaim", endpoint="vclaim.sep",
                         received_from=T0, received_to=T0 + 86_400, text="0001234 \"x\"")
    for f in (full, RequestFilter()):
        assert filter_from_json(filter_to_json(f)) == f
    assert filter_to_json(RequestFilter(status=Status.DEAD)) == '{"status": "dead"}'


def test_roles_grant_what_the_issue_says() -> None:
    assert GRANTS[Role.VIEWER] == {Permission.READ}
    assert Permission.OPERATE in GRANTS[Role.OPERATOR]
    assert Permission.EXPORT not in GRANTS[Role.OPERATOR]
    assert GRANTS[Role.AUDITOR] == {Permission.READ, Permission.EXPORT, Permission.IDENTIFIERS}
    assert Permission.IDENTIFIERS not in GRANTS[Role.OPERATOR] | GRANTS[Role.VIEWER]
    assert GRANTS[Role.ADMIN] == set(Permission)


def test_views_modules_stay_small() -> None:
    for path in UI.glob("*.py"):
        assert len(path.read_text("utf-8").splitlines()) <= 400, path.name
    assert views_bulk.__doc__
