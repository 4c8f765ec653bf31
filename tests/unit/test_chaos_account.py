"""The chaos soak's accounting (bench/chaos_account.py) on hand-made simulator records:
each violation it exists to find is found, and what is allowed is not counted."""

from __future__ import annotations

from typing import Any

from bench.chaos_account import Accountant, Figures
from bench.chaos_load import ADD, BED, SEP, TASK, Ack

_seq = iter(range(1, 10_000))


def entry(path: str, body: dict[str, Any], *, at: float, applied: bool = True,
          outcome: str = "ok", answer: str = "json") -> dict[str, Any]:
    return {"seq": next(_seq), "time": at, "method": "POST", "path": path, "body": body,
            "applied": applied, "outcome": outcome, "answer": answer}


def task(kode: str, n: int, **kw: Any) -> dict[str, Any]:
    return entry(TASK, {"kodebooking": kode, "taskid": n}, **kw)


def bed(room: str, version: int, **kw: Any) -> dict[str, Any]:
    return entry(BED, {"koderuang": room, "tersedia": version}, **kw)


def ack(kind: str, key: str, request_id: str) -> Ack:
    return Ack(kind, key, request_id, 202, 0.0, 0.0, "202")


def state(bookings: dict[str, list[int]] | None = None, cards: tuple[str, ...] = (),
          rooms: dict[str, int] | None = None) -> dict[str, Any]:
    return {"bookings": [{"kodebooking": k, "task_ids": t} for k, t in (bookings or {}).items()],
            "seps": [{"no_kartu": c, "deleted": False} for c in cards],
            "beds": [{"koderuang": r, "tersedia": v} for r, v in (rooms or {}).items()]}


def run(acks: list[Ack], st: dict[str, Any], log: list[dict[str, Any]],
        rows: dict[str, tuple[str, str]], kills: tuple[float, ...] = ()) -> Figures:
    return Accountant(acks, st, log, rows, list(kills)).run()


def test_a_clean_run_has_no_violation() -> None:
    log = [entry(ADD, {"kodebooking": "KB"}, at=1), task("KB", 1, at=2),
           bed("R1", 1, at=3), entry(SEP, {"request": {"t_sep": {"noKartu": "C1"}}}, at=4)]
    acks = [ack("add", "KB", "a"), ack("task", "KB/1", "b"), ack("bed", "room/R1/1", "c"),
            ack("sep", "sep/C1", "d")]
    rows = {i: ("succeeded", "") for i in "abcd"}
    f = run(acks, state({"KB": [1]}, ("C1",), {"R1": 1}), log, rows)
    assert f.violations() == 0, f.as_dict()
    assert sum(f.acknowledged.values()) == 4


def test_an_acknowledged_write_bpjs_does_not_hold_is_lost() -> None:
    f = run([ack("task", "KB/2", "a")], state({"KB": [1]}), [task("KB", 1, at=1)],
            {"a": ("succeeded", "")})
    assert len(f.lost) == 1 and f.violations() == 1


def test_held_counts_as_lost_and_on_its_own() -> None:
    f = run([ack("sep", "sep/C1", "a")], state(), [], {"a": ("held", "could not tell")})
    assert len(f.held) == 1 and len(f.lost) == 1


def test_a_task_sent_before_its_predecessor_landed_is_reordered() -> None:
    log = [task("KB", 2, at=1, applied=False, outcome="ordering"), task("KB", 1, at=2),
           task("KB", 2, at=3)]
    acks = [ack("task", "KB/1", "a"), ack("task", "KB/2", "b")]
    f = run(acks, state({"KB": [1, 2]}), log, {"a": ("succeeded", ""), "b": ("succeeded", "")})
    assert len(f.reordered) == 1


def test_a_resend_after_a_clean_answer_is_unjustified_and_after_a_kill_justified() -> None:
    log = [task("KB", 1, at=1), task("KB", 1, at=5, applied=False, outcome="duplicate")]
    rows = {"a": ("succeeded", "")}
    acks = [ack("task", "KB/1", "a")]
    assert len(run(acks, state({"KB": [1]}), log, rows).resent_unjustified) == 1
    justified = run(acks, state({"KB": [1]}), log, rows, kills=(3.0,))
    assert justified.resent_justified == 1 and justified.violations() == 0


def test_a_sep_insert_sent_again_after_it_was_made_is_always_a_violation() -> None:
    body = {"request": {"t_sep": {"noKartu": "C1"}}}
    log = [entry(SEP, body, at=1, answer="reset"),
           entry(SEP, body, at=2, applied=False, outcome="duplicate")]
    f = run([ack("sep", "sep/C1", "a")], state(cards=("C1",)), log, {"a": ("succeeded", "")})
    assert len(f.resent_unjustified) == 1


def test_two_seps_for_one_visit_are_applied_twice() -> None:
    f = run([ack("sep", "sep/C1", "a")], state(cards=("C1", "C1")), [],
            {"a": ("succeeded", "")})
    assert len(f.applied_twice) == 1


def test_a_bed_update_reapplied_after_a_lost_answer_is_idempotent_not_twice() -> None:
    log = [bed("R1", 1, at=1, answer="reset"), bed("R1", 1, at=2)]
    f = run([ack("bed", "room/R1/1", "a")], state(rooms={"R1": 1}), log,
            {"a": ("succeeded", "")})
    assert f.bed_reapplied == 1 and f.violations() == 0


def test_an_older_bed_update_after_a_newer_one_is_a_stale_overwrite() -> None:
    log = [bed("R1", 1, at=1, answer="reset"), bed("R1", 2, at=2), bed("R1", 1, at=3)]
    acks = [ack("bed", "room/R1/1", "a"), ack("bed", "room/R1/2", "b")]
    f = run(acks, state(rooms={"R1": 2}), log, {"a": ("succeeded", ""), "b": ("succeeded", "")})
    assert len(f.stale_overwrites) == 1


def test_a_superseded_bed_update_is_not_lost_but_the_last_one_must_land() -> None:
    acks = [ack("bed", "room/R1/1", "a"), ack("bed", "room/R1/2", "b")]
    rows = {"a": ("cancelled", "superseded by b"), "b": ("succeeded", "")}
    assert run(acks, state(rooms={"R1": 2}), [bed("R1", 2, at=1)], rows).violations() == 0
    assert len(run(acks, state(rooms={"R1": 1}), [bed("R1", 2, at=1)], rows).lost) == 1
