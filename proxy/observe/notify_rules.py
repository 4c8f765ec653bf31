"""When to tell the admins what: the notification conditions, pure and clock-free.

Conditions, per upstream:
- the circuit opened and has not closed for ``breaker_open_after_s`` (one message per
  outage, however often the probes fail), and one "recovered" message when it closes;
- the oldest pending request is older than ``oldest_pending_after_s``, and "cleared";
- requests went ``dead`` or ``held``: counted, the first at once, the rest together.
At most one message per condition and upstream per ``window_s`` (``Kind.condition``);
what is held back is counted into the next one. A recovery is never held back (whoever
was told "open" must hear "closed"), and is only sent when the alert was.

While an upstream is quiet (maintenance window and its ramp) alerts are not sent and an
open circuit's clock restarts, so an announced outage pages nobody; dead and held
requests are kept counted and reported once it is over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from proxy.bpjs.service_day import WIB
from proxy.config_ops import NotifyConfig
from proxy.lifecycle import Status
from proxy.observe.patient_data import mask_text
from proxy.policies.breaker import BreakerState

MAX_IDS = 10  # request ids quoted in one message


class Kind(StrEnum):
    BREAKER_OPEN = "breaker_open"
    BREAKER_CLOSED = "breaker_closed"
    BACKLOG = "backlog"
    BACKLOG_CLEARED = "backlog_cleared"
    DEAD = "dead"
    HELD = "held"

    @property
    def condition(self) -> str:
        """The condition a message of this kind is about (an alert and its all-clear
        share one): the rate-limit window's key, here and in the store's claims."""
        return _CONDITION[self]

    @property
    def all_clear(self) -> bool:
        """The "recovered" answer to an alert: sent only where that alert was."""
        return self in (Kind.BREAKER_CLOSED, Kind.BACKLOG_CLEARED)


_CONDITION = {Kind.BREAKER_OPEN: "breaker", Kind.BREAKER_CLOSED: "breaker",
              Kind.BACKLOG: "backlog", Kind.BACKLOG_CLEARED: "backlog",
              Kind.DEAD: "dead", Kind.HELD: "held"}


@dataclass(frozen=True, slots=True)
class Message:
    kind: Kind
    upstream: str
    at: float
    title: str
    text: str
    count: int = 1
    request_ids: tuple[str, ...] = ()
    reason: str = ""  # a dead/held batch's last reason (masked), to put it back

    def as_json(self) -> dict[str, Any]:
        return {"event": self.kind.value, "upstream": self.upstream,
                "at": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds"),
                "title": self.title, "text": self.text, "count": self.count,
                "request_ids": list(self.request_ids)}


@dataclass(slots=True)
class _Episode:
    since: float | None = None  # when the condition began (None: it does not hold)
    alerted: bool = False
    count: int = 0  # openings / failed probes since the last message


@dataclass(slots=True)
class _Batch:
    count: int = 0
    ids: list[str] = field(default_factory=list)
    reason: str = ""


def _clock_text(t: float) -> str:
    return datetime.fromtimestamp(t, WIB).strftime("%H:%M WIB %d-%m-%Y")


def _minutes(seconds: float) -> str:
    return f"{max(0, round(seconds / 60))} min"


class Rules:
    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self._next_allowed: dict[tuple[str, str], float] = {}
        self._breaker: dict[str, _Episode] = {}
        self._backlog: dict[str, _Episode] = {}
        self._batches: dict[tuple[str, Status], _Batch] = {}

    def _allowed(self, kind: str, upstream: str, now: float) -> bool:
        return now >= self._next_allowed.get((kind, upstream), float("-inf"))

    def _sent(self, kind: str, upstream: str, now: float) -> None:
        self._next_allowed[(kind, upstream)] = now + self.config.window_s

    # --- events ------------------------------------------------------------------------

    def breaker_changed(self, upstream: str, old: BreakerState, new: BreakerState,
                        now: float) -> list[Message]:
        ep = self._breaker.setdefault(upstream, _Episode())
        if new is BreakerState.CLOSED:
            out = [self._recovered(upstream, ep, now)] if ep.alerted else []
            self._breaker[upstream] = _Episode()
            return out
        if new is BreakerState.OPEN:
            if ep.since is None:
                ep.since = now
            ep.count += 1  # an opening, or a failed probe re-opening it
        return []

    def request_finished(self, upstream: str, request_id: str, status: Status, reason: str,
                         now: float, quiet: bool) -> list[Message]:
        if status not in (Status.DEAD, Status.HELD):
            return []
        batch = self._batches.setdefault((upstream, status), _Batch())
        batch.count += 1
        if len(batch.ids) < MAX_IDS:
            batch.ids.append(request_id)
        # A BPJS reason may name the patient ("Peserta NoKa ..."); messages leave Tenang
        # through third-party channels (Telegram, e-mail), so they carry it masked.
        batch.reason = mask_text(reason)
        return [] if quiet else self._flush(upstream, status, now)

    def held_back(self, message: Message) -> None:
        """A dead/held batch another instance's message for the same condition beat to
        the window: counted into this upstream's next one (what is held back is never
        lost). Other kinds need nothing: the other instance's message said it."""
        if message.kind not in (Kind.DEAD, Kind.HELD):
            return
        batch = self._batches.setdefault((message.upstream, Status(message.kind.value)),
                                         _Batch())
        batch.count += message.count
        batch.ids = [*message.request_ids, *batch.ids][:MAX_IDS]
        batch.reason = batch.reason or message.reason

    def check(self, now: float, oldest_age: Mapping[str, float | None],
              quiet: Callable[[str], bool]) -> list[Message]:
        """The periodic pass: open-circuit and backlog alerts, batched counts."""
        out: list[Message] = []
        for upstream, ep in self._breaker.items():
            if quiet(upstream):
                if ep.since is not None:
                    ep.since, ep.count = now, 0
                continue
            if ep.since is not None and not ep.alerted and \
                    now - ep.since >= self.config.breaker_open_after_s and \
                    self._allowed("breaker", upstream, now):
                out.append(self._open_alert(upstream, ep, now))
        for upstream, age in oldest_age.items():
            out += self._backlog_check(upstream, age, now, quiet(upstream))
        for upstream, status in list(self._batches):
            if not quiet(upstream):
                out += self._flush(upstream, status, now)
        return out

    # --- messages ----------------------------------------------------------------------

    def _open_alert(self, upstream: str, ep: _Episode, now: float) -> Message:
        assert ep.since is not None
        ep.alerted = True
        self._sent("breaker", upstream, now)
        since = _clock_text(ep.since)
        msg = Message(
            Kind.BREAKER_OPEN, upstream, now,
            f"[Tenang] {upstream}: sirkuit terbuka / circuit open",
            f"Sirkuit ke {upstream} terbuka sejak {since} ({_minutes(now - ep.since)}): "
            f"permintaan disimpan dan dikirim ulang nanti ({ep.count}x dibuka/gagal uji).\n"
            f"The circuit to {upstream} has been open since {since} "
            f"({_minutes(now - ep.since)}): requests are stored and will be retried "
            f"({ep.count} openings/failed probes).", count=ep.count)
        ep.count = 0
        return msg

    def _recovered(self, upstream: str, ep: _Episode, now: float) -> Message:
        took = _minutes(now - (ep.since or now))
        return Message(
            Kind.BREAKER_CLOSED, upstream, now,
            f"[Tenang] {upstream}: pulih / recovered",
            f"Sirkuit ke {upstream} tertutup lagi setelah {took}; antrean dikirim bertahap.\n"
            f"The circuit to {upstream} closed again after {took}; the backlog drains at a "
            f"paced rate.")

    def _backlog_check(self, upstream: str, age: float | None, now: float,
                       quiet: bool) -> list[Message]:
        ep = self._backlog.setdefault(upstream, _Episode())
        if age is None or age < self.config.oldest_pending_after_s:
            if not ep.alerted:
                return []
            self._backlog[upstream] = _Episode()
            return [Message(
                Kind.BACKLOG_CLEARED, upstream, now,
                f"[Tenang] {upstream}: antrean normal / backlog cleared",
                f"Tidak ada lagi permintaan tertunda untuk {upstream} yang lebih lama dari "
                f"{_minutes(self.config.oldest_pending_after_s)}.\n"
                f"No pending request for {upstream} is older than "
                f"{_minutes(self.config.oldest_pending_after_s)} any more.")]
        if ep.alerted or quiet or not self._allowed("backlog", upstream, now):
            return []
        ep.alerted = True
        self._sent("backlog", upstream, now)
        return [Message(
            Kind.BACKLOG, upstream, now,
            f"[Tenang] {upstream}: antrean tertunda / backlog",
            f"Permintaan tertunda tertua untuk {upstream} berumur {_minutes(age)}.\n"
            f"The oldest pending request for {upstream} is {_minutes(age)} old.")]

    def _flush(self, upstream: str, status: Status, now: float) -> list[Message]:
        batch = self._batches.get((upstream, status))
        if batch is None or not batch.count or not self._allowed(status.value, upstream, now):
            return []
        del self._batches[(upstream, status)]
        self._sent(status.value, upstream, now)
        words = {Status.DEAD: ("mati (tidak akan dikirim ulang otomatis)",
                               "dead (no more automatic retries)"),
                 Status.HELD: ("ditahan (menunggu pemeriksaan)", "held (needs review)")}
        idn, eng = words[status]
        ids = ", ".join(batch.ids) + (" ..." if batch.count > len(batch.ids) else "")
        return [Message(
            Kind(status.value), upstream, now,
            f"[Tenang] {upstream}: {batch.count} permintaan {status.value}",
            f"{batch.count} permintaan ke {upstream} {idn}.\n"
            f"{batch.count} request(s) to {upstream} went {eng}.\n"
            f"Terakhir / last reason: {batch.reason}\nID: {ids}",
            count=batch.count, request_ids=tuple(batch.ids), reason=batch.reason)]
