"""The periodic loop the shared breaker and the maintenance windows run on: a failed step
never ends it, and a poke runs the next step without waiting out the interval."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy.periodic import Periodic
from proxy.store.errors import StoreError
from tests.conftest import wait_until

log = logging.getLogger("tenang.test")
HOUR = 3600.0  # an interval no test waits out: only pokes and failures move these loops


async def test_failed_steps_are_logged_and_the_loop_carries_on(
        caplog: pytest.LogCaptureFixture) -> None:
    steps: list[int] = []

    async def step() -> None:
        steps.append(len(steps))
        if len(steps) == 1:
            raise StoreError("the store is down")
        if len(steps) == 2:
            raise RuntimeError("a bug")

    loop = Periodic("reload", step, lambda: 0.0, log, expected=(StoreError,),
                    failed="windows not refreshed", level=logging.ERROR)
    loop.start()
    try:
        await wait_until(lambda: len(steps) >= 3, what="a third step after two failures")
    finally:
        await loop.stop()
        await loop.stop()  # idempotent
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == log.name]
    assert lines[0][0] == logging.ERROR
    assert lines[0][1].startswith("windows not refreshed: ")
    assert lines[1] == (logging.ERROR, "reload: unexpected error; carrying on")


async def test_a_poke_during_a_step_runs_another_right_after_it() -> None:
    running, release = asyncio.Event(), asyncio.Event()
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        if steps == 1:
            running.set()
            await release.wait()

    loop = Periodic("sync", step, lambda: HOUR, log, expected=(StoreError,), failed="not synced")
    loop.start()
    try:
        await running.wait()
        loop.poke()  # a move made while the step was reading the store
        release.set()
        await wait_until(lambda: steps == 2, what="the step after the poke")
        loop.poke()  # and one while the loop waits
        await wait_until(lambda: steps == 3, what="the step after the second poke")
    finally:
        await loop.stop()
