"""What Tenang knows when it stops is stored, not cut short: a delivery or a callback
cancelled at shutdown while its outcome is being written still writes it, so after the
restart the request is final instead of in flight (to be taken for an interrupted send
and sent again), and the callback is delivered instead of claimed (to be POSTed again).

Each test holds the outcome write in a wrapped SQLite store until the stop has
cancelled the task writing it, then lets it go on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from proxy.lifecycle import Status
from proxy.store.callbacks_base import CallbackStatus
from proxy.store.sqlite.store import SqliteStore
from tests.bpjs_support import Simrs, booking, bpjs_config
from tests.conftest import wait_until
from tests.integration.notify_receivers import HttpReceiver, http_receiver
from tests.integration.test_callbacks_http import config as callback_config
from tests.integration.test_callbacks_http import submit
from tests.integration.test_modes import SEP_INSERT, Caller, t_sep

__all__ = ["http_receiver"]  # fixture used below

GRACE = {"shutdown_grace_s": 0.1}  # the stop cancels what is still running after this


class HeldWrites(SqliteStore):
    """The real SQLite store; the write of an outcome named in ``held`` waits for
    ``go_on``, and ``writing`` tells the test it has begun."""

    def __init__(self, path: Path, held: str) -> None:
        super().__init__(path)
        self.held = held
        self.writing, self.go_on = asyncio.Event(), asyncio.Event()

    async def _hold(self, verb: str) -> None:
        if verb == self.held:
            self.writing.set()
            await self.go_on.wait()

    async def complete_attempt(self, *args: Any, **kwargs: Any) -> None:
        await self._hold("complete_attempt")
        await super().complete_attempt(*args, **kwargs)

    async def finish_callback(self, *args: Any, **kwargs: Any) -> None:
        await self._hold("finish_callback")
        await super().finish_callback(*args, **kwargs)


async def stop_while_writing(tenang: Tenang, store: HeldWrites, task_name: str) -> None:
    """Stop Tenang while ``task_name``'s write is held; let it go on only once the stop
    has cancelled that task (a write that ignored the cancel would pass regardless)."""
    await store.writing.wait()
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == task_name]
    stopping = asyncio.create_task(tenang.stop())
    await wait_until(lambda: task.cancelling() > 0, what=f"the stop to cancel {task_name}")
    store.go_on.set()
    await stopping
    assert task.cancelled(), "the cancellation is raised again once the write is done"


async def reopened(cfg: Config) -> SqliteStore:
    store = SqliteStore(cfg.store.sqlite_path)
    await store.open()
    return store


@pytest.mark.parametrize("what", ["a send's answer", "a reconciliation's finding"])
async def test_an_outcome_being_written_at_shutdown_is_stored_not_left_in_flight(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, what: str) -> None:
    if what == "a send's answer":
        cfg = bpjs_config(tmp_path, bpjs_sim, relay=GRACE)
    else:  # a live SEP insert whose connection drops after BPJS made it: read back
        cfg = bpjs_config(tmp_path, bpjs_sim, "vclaim", relay=GRACE, routes=[
            {"match": "POST SEP/{v}/insert", "deadline_ms": 300}])
        await bpjs_sim.fault("SEP/2.0/insert", "reset-after-apply")
    store = HeldWrites(cfg.store.sqlite_path, "complete_attempt")
    tenang = await start_tenang(cfg, store=store)
    if what == "a send's answer":
        request_id = await Simrs(http, bpjs_sim, tenang).send(
            "POST", "/antreanrs/antrean/add", booking("KB-STOP"))
    else:
        status, headers, _, _ = await Caller(http, bpjs_sim, tenang, "vclaim").call(
            "POST", SEP_INSERT, t_sep("0001112229999"))
        assert status == 202  # the deadline passed while the outcome waited for the store
        request_id = headers["X-Tenang-Request-Id"]

    await stop_while_writing(tenang, store, f"deliver-{request_id}")

    after_restart = await reopened(cfg)
    try:
        row = await after_restart.get(request_id)
        assert row is not None and row.status is Status.SUCCEEDED, row
        assert row.lease_owner is None
        assert len(await after_restart.attempts(request_id)) == 1
        if what == "a reconciliation's finding":
            assert "found by reconciliation" in (row.reason or "")
    finally:
        await after_restart.close()
    if what == "a reconciliation's finding":
        assert await bpjs_sim.log("HistoriPelayanan")
    sent = "antrean/add" if what == "a send's answer" else "SEP/2.0/insert"
    assert len(await bpjs_sim.log(sent)) == 1


async def test_a_callback_result_being_written_at_shutdown_is_stored(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, http_receiver: HttpReceiver) -> None:
    cfg = callback_config(tmp_path, bpjs_sim, http_receiver)
    cfg = dataclasses.replace(cfg, relay=dataclasses.replace(
        cfg.relay, shutdown_grace_s=GRACE["shutdown_grace_s"]))
    store = HeldWrites(cfg.store.sqlite_path, "finish_callback")
    tenang = await start_tenang(cfg, store=store)
    request_id = await submit(http, bpjs_sim, tenang, "KB-CB-STOP")

    await stop_while_writing(tenang, store, "callback-sender")

    after_restart = await reopened(cfg)
    try:
        [callback] = await after_restart.callbacks_for(request_id)
        assert callback.status is CallbackStatus.DELIVERED
    finally:
        await after_restart.close()
    assert [json.loads(p["body"])["id"] for p in http_receiver.posts] == [request_id]
