"""Delivery outcomes in the log: routine ones summed up per upstream, the ones ops must
act on (failed, dead, held) a line each with the request id (issue 9.4)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from proxy.config import Config, parse_config
from proxy.delivery.outcome_log import DeliveryLog
from proxy.lifecycle import Status
from tests.conftest import wait_until
from tests.unit.test_config import fails_naming, minimal, with_value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def relay_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tenang.relay"]


def test_succeeded_deliveries_are_one_summary_line_per_period(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tenang.relay")
    clock = FakeClock()
    outcomes = DeliveryLog("antrean", summary_s=10.0, clock=clock)
    for i in range(1200):
        outcomes.finished(f"R{i}", Status.SUCCEEDED, "200 OK")
        clock.now += 0.005  # 6 s in all
    for i in range(30):
        outcomes.finished(f"P{i}", Status.PENDING, "timeout; retry in 2 s")
    assert relay_lines(caplog) == []  # nothing yet: the period is not over

    clock.now += 4.1
    outcomes.finished("R-last", Status.SUCCEEDED, "200 OK")

    assert relay_lines(caplog) == [
        (logging.INFO, "deliveries in the last 10 s: 1231 (1201 succeeded, 30 pending)")]
    assert caplog.records[-1].upstream == "antrean"  # type: ignore[attr-defined]
    caplog.clear()
    clock.now += 3
    outcomes.finished("R-next", Status.SUCCEEDED, "200 OK")
    assert relay_lines(caplog) == []  # a new period started with the summary
    assert outcomes.flush() == "deliveries in the last 0.0 s: 1 (1 succeeded)"
    assert outcomes.flush() is None  # nothing counted since


def test_failed_dead_and_held_get_a_line_each_with_the_request_id(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tenang.relay")
    clock = FakeClock()
    outcomes = DeliveryLog("vclaim", summary_s=10.0, clock=clock)
    outcomes.finished("R1", Status.SUCCEEDED, "200 OK")
    outcomes.finished("R2", Status.FAILED, "BPJS 201: Peserta tidak ditemukan")
    outcomes.finished("R3", Status.DEAD, "gave up after 10 attempts")
    outcomes.finished("R4", Status.HELD, "held behind failed (R2)")

    assert relay_lines(caplog) == [
        (logging.WARNING, "request R2 -> failed (BPJS 201: Peserta tidak ditemukan)"),
        (logging.WARNING, "request R3 -> dead (gave up after 10 attempts)"),
        (logging.WARNING, "request R4 -> held (held behind failed (R2))")]
    assert [r.request_id for r in caplog.records] == ["R2", "R3", "R4"]  # type: ignore[attr-defined]
    assert outcomes.flush() == ("deliveries in the last 0.0 s: 4 (1 succeeded, 1 failed, "
                                "1 dead, 1 held)")


def test_log_each_delivery_brings_back_a_line_per_delivery(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tenang.relay")
    outcomes = DeliveryLog("antrean", each=True, clock=FakeClock())
    outcomes.finished("R1", Status.SUCCEEDED, "200 OK")
    outcomes.finished("R2", Status.PENDING, "timeout; retry in 2 s")
    assert relay_lines(caplog) == [(logging.INFO, "request R1 -> succeeded (200 OK)"),
                                   (logging.INFO, "request R2 -> pending (timeout; retry in 2 s)")]


def test_per_delivery_lines_are_debug_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tenang.relay")
    outcomes = DeliveryLog("antrean", clock=FakeClock())
    outcomes.finished("R1", Status.SUCCEEDED, "200 OK")
    assert relay_lines(caplog) == [(logging.DEBUG, "request R1 -> succeeded (200 OK)")]


async def test_the_summary_comes_out_when_deliveries_stop(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tenang.relay")
    outcomes = DeliveryLog("antrean", summary_s=0.05)
    outcomes.finished("R1", Status.SUCCEEDED, "200 OK")
    outcomes.finished("R2", Status.SUCCEEDED, "200 OK")
    await wait_until(lambda: bool(relay_lines(caplog)), what="the summary line")
    [(level, line)] = relay_lines(caplog)
    assert level == logging.INFO
    assert line.endswith(": 2 (2 succeeded)")
    await asyncio.sleep(0)
    assert outcomes.flush() is None


def parsed(raw: dict[str, object]) -> Config:
    return parse_config(raw, Path("."), {})


def test_config_reads_the_delivery_log_settings() -> None:
    assert parsed(minimal()).relay.log_each_delivery is False
    assert parsed(with_value("relay.log_each_delivery", True)).relay.log_each_delivery is True
    assert parsed(with_value("relay.log_summary_s", 30)).relay.log_summary_s == 30.0
    with fails_naming("relay.log_summary_s"):
        parsed(with_value("relay.log_summary_s", 0))
