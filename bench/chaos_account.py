"""Jepsen-style accounting of a chaos soak, from the simulator's state and log (what BPJS
ended up with and every request it received) and Tenang's own store (final statuses).

- **lost**: an acknowledged write whose effect BPJS does not hold at the end. A request
  left ``held`` counts as lost unless the simulator shows the case was truly ambiguous
  (every reconciliation read Tenang made for it was answered by BPJS, so BPJS itself
  could not tell); ``held`` is also reported on its own (issue 10.1).
- **applied twice**: BPJS state changed twice by one write (a bed update applied again
  with the same absolute counts after an ambiguous outcome is reported apart, as
  ``beds_reapplied_idempotent``: BPJS ends the same; one applied after a newer update of
  its room is a ``stale overwrite``, a violation). Sends after a write was
  applied are reported as ``resent``; they are justified only when the outcome was
  ambiguous to Tenang: the applying send's answer was lost (reset) or Tenang was killed
  between that send and the next. A SEP insert is never resent after it was applied.
- **reordered**: a booking's call that reached BPJS before its predecessor was applied
  (the simulator answers it ``ordering``).
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos_load import ADD, BED, SEP, TASK, Ack


@dataclass
class Figures:
    acknowledged: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    held_ambiguous: list[str] = field(default_factory=list)
    not_final: list[str] = field(default_factory=list)
    applied_twice: list[str] = field(default_factory=list)
    resent_justified: int = 0
    resent_unjustified: list[str] = field(default_factory=list)
    reordered: list[str] = field(default_factory=list)
    superseded: int = 0
    sep_reconciled: int = 0   # SEP inserts settled by reading BPJS's history
    bed_reapplied: int = 0    # a bed update applied again after an ambiguous outcome
    stale_overwrites: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    def violations(self) -> int:
        return (len(self.lost) + len(self.applied_twice) + len(self.resent_unjustified)
                + len(self.reordered) + len(self.not_final) + len(self.stale_overwrites))

    def as_dict(self) -> dict[str, Any]:
        return {"acknowledged": dict(self.acknowledged),
                "acknowledged_total": sum(self.acknowledged.values()),
                "lost": len(self.lost), "held": len(self.held),
                "held_truly_ambiguous": len(self.held_ambiguous),
                "not_final": len(self.not_final), "applied_twice": len(self.applied_twice),
                "reordered": len(self.reordered), "resent_justified": self.resent_justified,
                "resent_unjustified": len(self.resent_unjustified),
                "beds_superseded": self.superseded, "sep_reconciled": self.sep_reconciled,
                "beds_reapplied_idempotent": self.bed_reapplied,
                "beds_stale_overwrites": len(self.stale_overwrites),
                "statuses": dict(self.statuses),
                "examples": {k: v[:5] for k, v in (
                    ("lost", self.lost), ("held", self.held), ("applied_twice",
                    self.applied_twice), ("resent_unjustified", self.resent_unjustified),
                    ("reordered", self.reordered), ("not_final", self.not_final),
                    ("stale_overwrites", self.stale_overwrites)) if v}}


def tenang_rows(db: Path) -> dict[str, tuple[str, str]]:
    """id -> (status, reason), read from the stopped Tenang's SQLite file."""
    conn = sqlite3.connect(db)
    try:
        return {r[0]: (r[1], r[2] or "")
                for r in conn.execute("SELECT id, status, reason FROM requests")}
    finally:
        conn.close()


def _write_key(entry: dict[str, Any]) -> str | None:
    """The ledger key a simulator log entry's request belongs to."""
    body, path = entry.get("body"), entry["path"]
    if not isinstance(body, dict):
        return None
    if path == ADD:
        return str(body.get("kodebooking"))
    if path == TASK:
        return f"{body.get('kodebooking')}/{body.get('taskid')}"
    if path == BED:
        return f"room/{body.get('koderuang')}/{body.get('tersedia')}"
    if path == SEP:
        t_sep = (body.get("request") or {}).get("t_sep") or {}
        return f"sep/{t_sep.get('noKartu')}"
    return None


class Accountant:
    def __init__(self, acks: list[Ack], state: dict[str, Any], log: list[dict[str, Any]],
                 rows: dict[str, tuple[str, str]], kills: list[float]) -> None:
        self.acks, self.state, self.log, self.rows = acks, state, log, rows
        self.kills = sorted(kills)
        self.figures = Figures()
        self.sends: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in sorted(log, key=lambda e: e["seq"]):
            key = _write_key(entry)
            if key is not None:
                self.sends[key].append(entry)

    def run(self) -> Figures:
        f = self.figures
        bookings = {b["kodebooking"]: set(b["task_ids"]) for b in self.state["bookings"]}
        cards = Counter(s["no_kartu"] for s in self.state["seps"] if not s["deleted"])
        rooms = {b["koderuang"]: b["tersedia"] for b in self.state["beds"]}
        last_bed: dict[str, int] = {}
        for ack in self.acks:
            f.acknowledged[ack.kind] += 1
            status, reason = self.rows.get(ack.request_id, ("missing", ""))
            f.statuses[f"{ack.kind}:{status}"] += 1
            if status in ("pending", "in_flight", "missing"):
                f.not_final.append(f"{ack.key} {ack.request_id} {status}")
            if ack.kind == "add":
                present = ack.key in bookings
            elif ack.kind == "task":
                kode, task = ack.key.split("/")
                present = int(task) in bookings.get(kode, set())
            elif ack.kind == "sep":
                present = cards[ack.key.removeprefix("sep/")] >= 1
                f.sep_reconciled += "reconcil" in reason.lower()
            else:
                _, room, version = ack.key.split("/")
                last_bed[room] = max(last_bed.get(room, 0), int(version))
                present = self._applied(ack.key) or (
                    status == "cancelled" and "supersed" in reason.lower())
                f.superseded += status == "cancelled"
            if status == "held":
                f.held.append(f"{ack.key} ({reason})")
                if self._truly_ambiguous(ack):
                    f.held_ambiguous.append(ack.key)
                    continue
                f.lost.append(f"{ack.key}: held, {'applied' if present else 'not applied'}"
                              f" at BPJS ({reason})")
            elif not present:
                f.lost.append(f"{ack.key}: {status} ({reason})")
        for room, last in last_bed.items():
            if rooms.get(room) != last:
                f.lost.append(f"room {room}: BPJS has tersedia={rooms.get(room)}, the last "
                              f"acknowledged update was {last}")
        for kode in cards:
            if cards[kode] > 1:
                f.applied_twice.append(f"sep/{kode}: {cards[kode]} SEPs")
        self._resends()
        self._order()
        self._rooms_in_order()
        return f

    def _applied(self, key: str) -> bool:
        return any(e.get("applied") for e in self.sends.get(key, []))

    def _truly_ambiguous(self, ack: Ack) -> bool:
        if ack.kind != "sep":
            return False
        card = ack.key.removeprefix("sep/")
        reads = [e for e in self.log if "HistoriPelayanan" in e["path"] and card in e["path"]]
        return bool(reads) and all(e.get("answer") == "json" for e in reads)

    def _killed_between(self, start: float, end: float) -> bool:
        i = bisect_left(self.kills, start)
        return i < len(self.kills) and self.kills[i] <= end

    def _ambiguous(self, applied: dict[str, Any], later: dict[str, Any]) -> bool:
        """Whether Tenang could not know ``applied`` had landed when it sent ``later``."""
        return (applied.get("answer") in ("reset", "timeout")
                or self._killed_between(applied["time"], later["time"]))

    def _rooms_in_order(self) -> None:
        """One writer per room counts up: BPJS must never go back to an older version
        (a late resend overwriting a newer update)."""
        newest: dict[str, int] = {}
        for entry in sorted(self.log, key=lambda e: e["seq"]):
            key = _write_key(entry)
            if key is None or not key.startswith("room/") or not entry.get("applied"):
                continue
            _, room, version = key.split("/")
            if int(version) < newest.get(room, 0):
                self.figures.stale_overwrites.append(
                    f"room {room}: version {version} applied after {newest[room]}")
            newest[room] = max(newest.get(room, 0), int(version))

    def _resends(self) -> None:
        f = self.figures
        for key, sends in self.sends.items():
            applied = [e for e in sends if e.get("applied")]
            if not applied:
                continue
            first = applied[0]
            if len(applied) > 1:
                if key.startswith("room/") and all(self._ambiguous(first, e)
                                                   for e in applied[1:]):
                    # the same absolute counts again, after an answer Tenang never got
                    f.bed_reapplied += 1
                else:
                    f.applied_twice.append(f"{key}: applied {len(applied)} times")
            for later in (e for e in sends if e["seq"] > first["seq"]):
                if key.startswith("sep/") or not self._ambiguous(first, later):
                    f.resent_unjustified.append(
                        f"{key}: sent again (seq {later['seq']}, {later['outcome']}) after "
                        f"applied at seq {first['seq']} ({first.get('answer')})")
                else:
                    f.resent_justified += 1

    def _order(self) -> None:
        for key, sends in self.sends.items():
            for e in sends:
                if e["outcome"] == "ordering":
                    self.figures.reordered.append(
                        f"{key}: seq {e['seq']} reached BPJS before its predecessor was "
                        "applied")


def account(acks: list[Ack], state: dict[str, Any], log: list[dict[str, Any]], db: Path,
            kills: list[float]) -> Figures:
    return Accountant(acks, state, log, tenang_rows(db), kills).run()


def dump(figures: Figures) -> str:
    return json.dumps(figures.as_dict(), indent=2, sort_keys=True)
