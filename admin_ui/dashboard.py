"""The dashboard's content: one card per upstream and the attempts chart.

Cards are flat ``key -> text`` maps, rendered once into the page and again, same keys,
as the JSON the page polls, so the live update and the first render cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from admin_ui.fmt import age, wib, wib_clock
from admin_ui.i18n import Translator
from proxy.lifecycle import Status, Verdict
from proxy.ops.operations import UpstreamOverview
from proxy.store.records import AttemptBucket

SHOWN_STATUSES = (Status.PENDING, Status.IN_FLIGHT, Status.SUCCEEDED, Status.FAILED,
                  Status.DEAD, Status.HELD)
GOOD = frozenset({Verdict.SUCCESS, Verdict.DUPLICATE})

CHART_HOURS = 6
CHART_BUCKET_S = 900  # 15 minutes: 24 bars over six hours


@dataclass(frozen=True, slots=True)
class Card:
    name: str
    breaker: str  # closed / open / half-open, for styling
    fields: dict[str, str] = field(default_factory=dict)


def card(u: UpstreamOverview, now: float, t: Translator) -> Card:
    f: dict[str, str] = {s.value: str(u.counts.get(s, 0)) for s in SHOWN_STATUSES}
    f["sep_open"] = str(u.sep_open)
    oldest = u.oldest_pending_at
    f["oldest_pending"] = age(now - oldest, t) if oldest is not None else t("none")
    if u.last_attempt_at is not None and u.last_verdict is not None:
        f["last_attempt"] = (f"{wib(u.last_attempt_at)} · "
                             f"{t('verdict.' + u.last_verdict.value)}")
    else:
        f["last_attempt"] = t("none")
    f["breaker"] = t("breaker." + u.breaker_state.value)
    f["opened_at"] = wib(u.opened_at) or t("none")
    f["probe_at"] = wib(u.probe_at) or t("none")
    return Card(u.name, u.breaker_state.value, f)


def live_json(cards: Sequence[Card], now: float) -> dict[str, object]:
    """What live.js applies: text per ``data-field`` and a state per ``data-state-for``."""
    return {
        "fields": {f"{c.name}.{k}": v for c in cards for k, v in c.fields.items()}
        | {"generated_at": wib(now)},
        "states": {f"{c.name}.breaker": c.breaker for c in cards},
    }


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    ok_y: float
    ok_h: float
    bad_y: float
    bad_h: float
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    top: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # x, WIB hour label
    max_count: int
    bar_w: float


def chart(buckets: Sequence[AttemptBucket], since: float, t: Translator, *,
          hours: int = CHART_HOURS, bucket_s: int = CHART_BUCKET_S) -> Chart:
    """Stacked bars, delivered (success, duplicate) under failed (everything else)."""
    width, height, top, left = 480, 150, 10, 34
    n = hours * 3600 // bucket_s
    by_start = {round((b.start - since) / bucket_s): b for b in buckets}
    counts = []
    for i in range(n):
        b = by_start.get(i)
        ok = sum(v for k, v in b.counts.items() if k in GOOD) if b else 0
        bad = sum(v for k, v in b.counts.items() if k not in GOOD) if b else 0
        counts.append((ok, bad))
    peak = max((ok + bad for ok, bad in counts), default=0) or 1
    plot_h = height - top - 20
    step = (width - left) / n
    bars = []
    for i, (ok, bad) in enumerate(counts):
        ok_h, bad_h = plot_h * ok / peak, plot_h * bad / peak
        base = top + plot_h
        start = since + i * bucket_s
        title = t("chart.bar", at=wib_clock(start), ok=ok, failed=bad)
        bars.append(Bar(left + i * step, base - ok_h, ok_h, base - ok_h - bad_h, bad_h, title))
    ticks = [(left + i * step, wib_clock(since + i * bucket_s))
             for i in range(0, n, max(1, 3600 // bucket_s))]
    return Chart(width, height, top, bars, ticks, peak, max(step - 2, 1))
