"""Notification conditions (pure): when a message is due, deduplication, rate limit,
counts, recovery, and silence during maintenance."""

from __future__ import annotations

from collections.abc import Callable

from proxy.config_ops import NotifyConfig
from proxy.lifecycle import Status
from proxy.observe.notify_rules import Kind, Message, Rules
from proxy.policies.breaker import BreakerState

T0 = 1_800_000_000.0
CLOSED, HALF, OPEN = BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN
CFG = NotifyConfig(breaker_open_after_s=60.0, oldest_pending_after_s=600.0, window_s=900.0)


def never(upstream: str) -> bool:
    return False


def kinds(messages: list[Message]) -> list[str]:
    return [m.kind.value for m in messages]


def run_outage(rules: Rules, start: float, seconds: float, step: float = 1.0,
               quiet: Callable[[str], bool] = never) -> list[Message]:
    """The breaker opens at ``start`` and fails a probe every ``step`` seconds."""
    out = rules.breaker_changed("antrean", CLOSED, OPEN, start)
    t = start
    while t < start + seconds:
        t += step
        out += rules.breaker_changed("antrean", OPEN, HALF, t)
        out += rules.breaker_changed("antrean", HALF, OPEN, t)
        out += rules.check(t, {}, quiet)
    return out


def test_open_circuit_is_told_once_after_the_threshold() -> None:
    rules = Rules(CFG)
    assert run_outage(rules, T0, 59.0) == []
    out = run_outage(rules, T0 + 59, 300.0)
    assert kinds(out) == ["breaker_open"]
    assert out[0].at == T0 + 60
    assert "antrean" in out[0].title
    assert out[0].count >= 60  # openings and failed probes so far


def test_recovery_is_told_once_and_only_after_an_alert() -> None:
    rules = Rules(CFG)
    run_outage(rules, T0, 120.0)
    out = rules.breaker_changed("antrean", HALF, CLOSED, T0 + 121)
    assert kinds(out) == ["breaker_closed"]
    assert "2 min" in out[0].text
    # A short blip later (under the threshold) is neither alerted nor "recovered".
    blip = rules.breaker_changed("antrean", CLOSED, OPEN, T0 + 2000)
    blip += rules.check(T0 + 2030, {}, never)
    blip += rules.breaker_changed("antrean", HALF, CLOSED, T0 + 2040)
    assert blip == []


def test_a_second_outage_within_the_window_waits_for_the_window() -> None:
    rules = Rules(CFG)
    first = run_outage(rules, T0, 70.0)
    assert kinds(first) == ["breaker_open"]
    rules.breaker_changed("antrean", HALF, CLOSED, T0 + 100)
    second = run_outage(rules, T0 + 200, 600.0, step=10.0)
    # Alert allowed again only window_s after the first one (T0 + 60 + 900).
    assert second == []
    later = rules.check(T0 + 960, {}, never)
    assert kinds(later) == ["breaker_open"]


def test_upstreams_are_independent() -> None:
    rules = Rules(CFG)
    rules.breaker_changed("antrean", CLOSED, OPEN, T0)
    rules.breaker_changed("vclaim", CLOSED, OPEN, T0 + 30)
    out = rules.check(T0 + 60, {}, never)
    assert [(m.kind.value, m.upstream) for m in out] == [("breaker_open", "antrean")]
    out = rules.check(T0 + 90, {}, never)
    assert [(m.kind.value, m.upstream) for m in out] == [("breaker_open", "vclaim")]


def test_backlog_alert_and_cleared() -> None:
    rules = Rules(CFG)
    assert rules.check(T0, {"antrean": 599.0}, never) == []
    out = rules.check(T0 + 1, {"antrean": 601.0}, never)
    assert kinds(out) == ["backlog"]
    assert "10 min" in out[0].text
    assert rules.check(T0 + 20, {"antrean": 700.0}, never) == []
    assert kinds(rules.check(T0 + 30, {"antrean": None}, never)) == ["backlog_cleared"]
    assert rules.check(T0 + 40, {"antrean": None}, never) == []


def test_dead_requests_first_at_once_then_counted_per_window() -> None:
    rules = Rules(CFG)
    first = rules.request_finished("antrean", "r0", Status.DEAD, "retry limit", T0, False)
    assert kinds(first) == ["dead"]
    assert first[0].count == 1 and first[0].request_ids == ("r0",)
    held_back = []
    for i in range(1, 50):
        held_back += rules.request_finished("antrean", f"r{i}", Status.DEAD, f"why {i}",
                                            T0 + i, False)
    assert held_back == []
    assert rules.check(T0 + 899, {}, never) == []
    [summary] = rules.check(T0 + 900, {}, never)
    assert summary.kind is Kind.DEAD
    assert summary.count == 49
    assert len(summary.request_ids) == 10
    assert "why 49" in summary.text and "49" in summary.title


def test_a_reason_naming_the_patient_is_sent_masked() -> None:
    # Messages leave Tenang through third parties (Telegram, e-mail): no NIK or card there.
    [message] = Rules(CFG).request_finished(
        "vclaim", "r0", Status.DEAD, "201 Peserta NoKa 0001234567890 tidak aktif", T0, False)
    assert "0001234567890" not in message.text and "*********7890" in message.text


def test_held_and_dead_are_separate_conditions_and_other_statuses_are_ignored() -> None:
    rules = Rules(CFG)
    out = rules.request_finished("antrean", "a", Status.DEAD, "x", T0, False)
    out += rules.request_finished("antrean", "b", Status.HELD, "behind a", T0, False)
    out += rules.request_finished("antrean", "c", Status.SUCCEEDED, "ok", T0, False)
    out += rules.request_finished("antrean", "d", Status.FAILED, "201", T0, False)
    assert kinds(out) == ["dead", "held"]


def test_quiet_upstream_is_not_alerted_and_its_clock_restarts() -> None:
    rules = Rules(CFG)
    in_window = True

    def quiet(upstream: str) -> bool:
        return in_window and upstream == "antrean"

    assert run_outage(rules, T0, 600.0, quiet=quiet) == []
    dead = rules.request_finished("antrean", "r1", Status.DEAD, "x", T0 + 10, True)
    assert dead == []
    in_window = False
    # Dead requests counted meanwhile are told as soon as the quiet time is over...
    out = rules.check(T0 + 601, {"antrean": 5000.0}, quiet)
    assert sorted(kinds(out)) == ["backlog", "dead"]
    # ...but the still-open circuit needs breaker_open_after_s of its own again.
    assert rules.check(T0 + 650, {}, quiet) == []
    assert kinds(rules.check(T0 + 661, {}, quiet)) == ["breaker_open"]


def test_message_json_shape() -> None:
    rules = Rules(CFG)
    [m] = rules.request_finished("antrean", "r1", Status.HELD, "behind r0", T0, False)
    doc = m.as_json()
    assert doc == {"event": "held", "upstream": "antrean", "at": "2027-01-15T08:00:00+00:00",
                   "title": m.title, "text": m.text, "count": 1, "request_ids": ["r1"]}
