"""Each request-state rule is spelled once, in ``proxy/lifecycle.py``: the status sets the
queries use and the hold/release/supersede reasons. A backend that writes its own copy
(an SQL list of statuses, a tuple of ``Status`` members, the reason text, a
``Transition`` it builds itself) drifts from the others the day one of them changes."""

from __future__ import annotations

import re
from pathlib import Path

from proxy import lifecycle

ROOT = Path(__file__).resolve().parents[2]
_STATUS = "|".join(s.value for s in lifecycle.Status)
# Two request statuses side by side in quotes: an SQL list like ('pending','in_flight').
SQL_LIST = re.compile(rf"'(?:{_STATUS})'\s*,\s*'(?:{_STATUS})'")
# Two Status members side by side: a Python tuple or set of them.
PY_SET = re.compile(r"Status\.[A-Z_]+\s*,\s*Status\.[A-Z_]+")
BUILT = re.compile(r"\bTransition\(")
REASONS = (lifecycle.HELD_BEHIND, lifecycle.RELEASED, lifecycle.SUPERSEDED)
# Migrations are history: the DDL a database was created with stays as it was written.
FROZEN = ("proxy/store/sqlite/schema.py", "proxy/store/postgres/schema.sql")


def offences(root: Path) -> list[str]:
    found = []
    # The SQLite backend's statements live in queries.sql: its status lists are rendered.
    for path in sorted([*(root / "proxy").rglob("*.py"), *(root / "proxy").rglob("*.sql")]):
        name = path.relative_to(root).as_posix()
        if name == "proxy/lifecycle.py" or name in FROZEN:
            continue
        text = path.read_text(encoding="utf-8")
        in_store = name.startswith("proxy/store/")
        checks = [("an SQL status list", SQL_LIST)]
        if in_store:
            checks += [("a set of Status members", PY_SET), ("a Transition built", BUILT)]
        for what, pattern in checks:
            found += [f"{name}: {what}: {m.group(0)!r}" for m in pattern.finditer(text)]
        found += [f"{name}: the reason text {reason[:24]!r}..." for reason in REASONS
                  if reason[:24] in text]
    return found


def test_no_status_set_or_reason_text_is_spelled_out_outside_the_state_machine() -> None:
    assert offences(ROOT) == []


def test_the_check_sees_the_copies_it_is_for(tmp_path: Path) -> None:
    store = tmp_path / "proxy" / "store"
    store.mkdir(parents=True)
    (store / "copy.py").write_text(
        "_STUCK = \"('failed','dead','held')\"\n"
        "_LIVE = (Status.PENDING,\n          Status.IN_FLIGHT)\n"
        "t = Transition(Status.CANCELLED, 'superseded by a newer update for the same thing: ')\n"
        "why = 'held: an earlier request with the same ordering key is '\n")
    assert len(offences(tmp_path)) == 5


def test_sql_lists_render_in_declaration_order() -> None:
    assert (lifecycle.sql_in(lifecycle.BLOCKS_LATER)
            == "('pending','in_flight','failed','dead','held')")
    assert lifecycle.sql_in(lifecycle.STUCK) == "('failed','dead','held')"
    assert lifecycle.sql_in(lifecycle.QUEUED) == "('pending','in_flight','held')"
    assert lifecycle.sql_in(lifecycle.LIVE) == "('pending','in_flight')"


def test_the_reason_builders_name_the_request_they_point_at() -> None:
    hold = lifecycle.held_behind(lifecycle.Status.FAILED, "01ABC")
    assert (hold.status, hold.reason) == (
        lifecycle.Status.HELD,
        "held: an earlier request with the same ordering key is failed (01ABC)")
    gone = lifecycle.superseded_by("01XYZ")
    assert (gone.status, gone.reason) == (
        lifecycle.Status.CANCELLED,
        "superseded by a newer update for the same thing: 01XYZ")
    back = lifecycle.released(5.0)
    assert (back.status, back.next_attempt_at) == (lifecycle.Status.PENDING, 5.0)
