"""What Tenang knows when it stops is stored, not cut short: a delivery or a callback
cancelled at shutdown while its outcome is being written still writes it, so after the
restart the request is final instead of in flight (to be taken for an interrupted send
and sent again), and the callback is delivered instead of claimed (to be POSTed again).

Each test holds the outcome write in a wrapped SQLite role object until the stop has
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
from proxy.store.backend import Backend
from proxy.store.sqlite import SqliteDb, sqlite_backend, sqlite_backend_on
from proxy.store.sqlite.outbox import SqliteOutbox
from proxy.store.sqlite.queue import SqliteQueue
from tests.bpjs_support import Simrs, booking, bpjs_config
from tests.conftest import wait_until
from tests.integration.notify_receivers import HttpReceiver, http_receiver
from tests.integration.test_callbacks_http import config as callback_config
from tests.integration.test_callbacks_http import submit
from tests.integration.test_modes import SEP_INSERT, Caller, t_sep

__all__ = ["http_receiver"]  # fixture used below

GRACE = {"shutdown_grace_s": 0.1}  # the stop cancels what is still running after this


class Hold:
    """Holds a write until ``go_on``; ``writing`` tells the test it has begun."""

    def __init__(self) -> None:
        self.writing, self.go_on = asyncio.Event(), asyncio.Event()

    async def __call__(self) -> None:
        self.writing.set()
        await self.go_on.wait()


class HeldQueue(SqliteQueue):
    """The real SQLite queue, whose outcome writes wait for ``hold``."""

    def __init__(self, db: SqliteDb, hold: Hold) -> None:
        super().__init__(db)
        self.hold = hold

    async def complete_attempt(self, *args: Any, **kwargs: Any) -> None:
        await self.hold()
        await super().complete_attempt(*args, **kwargs)


class HeldOutbox(SqliteOutbox):
    """The real SQLite outbox, whose callback results wait for ``hold``."""

    def __init__(self, db: SqliteDb, hold: Hold) -> None:
        super().__init__(db)
        self.hold = hold

    async def finish_callback(self, *args: Any, **kwargs: Any) -> None:
        await self.hold()
        await super().finish_callback(*args, **kwargs)


def held(cfg: Config, verb: str) -> tuple[Backend, Hold]:
    """The SQLite backend of ``cfg`` whose ``verb`` ("complete_attempt" or
    "finish_callback") is held, and the hold."""
    db, hold = SqliteDb(cfg.store.sqlite_path), Hold()
    backend = sqlite_backend_on(db)
    if verb == "complete_attempt":
        return dataclasses.replace(backend, queue=HeldQueue(db, hold)), hold
    return dataclasses.replace(backend, outbox=HeldOutbox(db, hold)), hold


async def stop_while_writing(tenang: Tenang, hold: Hold, task_name: str) -> None:
    """Stop Tenang while ``task_name``'s write is held; let it go on only once the stop
    has cancelled that task (a write that ignored the cancel would pass regardless)."""
    await hold.writing.wait()
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == task_name]
    stopping = asyncio.create_task(tenang.stop())
    await wait_until(lambda: task.cancelling() > 0, what=f"the stop to cancel {task_name}")
    hold.go_on.set()
    await stopping
    assert task.cancelled(), "the cancellation is raised again once the write is done"


async def reopened(cfg: Config) -> Backend:
    backend = sqlite_backend(cfg.store.sqlite_path)
    await backend.open()
    return backend


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
    backend, hold = held(cfg, "complete_attempt")
    tenang = await start_tenang(cfg, backend=backend)
    if what == "a send's answer":
        request_id = await Simrs(http, bpjs_sim, tenang).send(
            "POST", "/antreanrs/antrean/add", booking("KB-STOP"))
    else:
        status, headers, _, _ = await Caller(http, bpjs_sim, tenang, "vclaim").call(
            "POST", SEP_INSERT, t_sep("0001112229999"))
        assert status == 202  # the deadline passed while the outcome waited for the store
        request_id = headers["X-Tenang-Request-Id"]

    await stop_while_writing(tenang, hold, f"deliver-{request_id}")

    after_restart = await reopened(cfg)
    try:
        row = await after_restart.log.get(request_id)
        assert row is not None and row.status is Status.SUCCEEDED, row
        assert row.lease_owner is None
        assert len(await after_restart.log.attempts(request_id)) == 1
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
    backend, hold = held(cfg, "finish_callback")
    tenang = await start_tenang(cfg, backend=backend)
    request_id = await submit(http, bpjs_sim, tenang, "KB-CB-STOP")

    await stop_while_writing(tenang, hold, "callback-sender")

    after_restart = await reopened(cfg)
    try:
        # Delivered: nothing left to send, not even a claim whose lease would run out.
        assert await after_restart.outbox.next_callback_at() is None
    finally:
        await after_restart.close()
    assert [json.loads(p["body"])["id"] for p in http_receiver.posts] == [request_id]
