"""``[audit] chain = false`` on every backend: nothing joins the chain while it is off,
each switch is one audit entry by ``tenang`` (the last link before the gap, the first
after it), the chain still verifies, and the off periods read back from the audit log
(what `tenang audit verify` and the audit page report)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.config import StoreConfig
from proxy.lifecycle import Status, Transition
from proxy.ops.audit_chain import off_periods, off_since, verify_chain
from proxy.store import chain
from proxy.store.backend import Backend
from proxy.store.memory import memory_backend
from proxy.store.memory.state import MemoryState
from proxy.store.postgres.backend import postgres_backend
from proxy.store.sqlite import sqlite_backend
from tests.pg_support import schema_now
from tests.store.test_contract import UP, attempt, put, req

# Per backend: a maker of backends on one and the same store, with the chain on or off.
Maker = Callable[[bool], Backend]


def _memory(tmp_path: Path) -> Maker:
    state = MemoryState()
    return lambda on: memory_backend(state, chain=on)


def _sqlite(tmp_path: Path) -> Maker:
    return lambda on: sqlite_backend(tmp_path / "tenang.db", busy_timeout_ms=2_000, chain=on)


def _postgres(tmp_path: Path) -> Maker:
    url = schema_now()
    return lambda on: postgres_backend(StoreConfig(url=url, pool_min=1, pool_max=4,
                                                   statement_timeout_s=10.0, chain=on))


MAKERS = {"memory": _memory, "sqlite": _sqlite, "postgres": _postgres}


async def chain_refs(store: Backend) -> list[tuple[str, str]]:
    return [(e.kind.value, e.ref) for e in await store.chain.chain_entries(0, 10_000)]


async def switch_ids(store: Backend) -> list[tuple[str, str]]:
    entries = await store.audit.audit_entries(target=chain.SWITCH_TARGET)
    return [(e.action, str(e.id)) for e in reversed(entries) if e.actor == "tenang"]


@pytest.mark.parametrize("backend", sorted(MAKERS))
async def test_off_nothing_joins_and_each_switch_is_one_linked_entry(
        backend: str, tmp_path: Path) -> None:
    make = MAKERS[backend](tmp_path)
    store = make(True)
    await store.open()
    [first] = await put(store, req(1))
    assert await switch_ids(store) == []  # on, as ever: nothing to record
    before = await chain_refs(store)
    assert before == [("request", first.id)]

    await store.close()
    store = make(False)
    await store.open()
    [unchained] = await put(store, req(2))
    now = time.time()
    [claimed] = await store.queue.claim_due(UP, now, 1, "w1", now + 30)
    assert claimed.id == first.id  # by id: the one stored while on, moved while off
    await store.queue.complete_attempt(first.id, "w1", attempt(1, now),
                                       Transition(Status.SUCCEEDED, "ok"), now)
    await store.audit.audit("siti", "cancel", unchained.id, None, time.time())
    [(action, off_id)] = await switch_ids(store)
    assert action == chain.SWITCHED_OFF
    # The switch is the chain's last entry: the request, claim, attempt, outcome and
    # audit entry made since are in none.
    assert await chain_refs(store) == [*before, ("audit", off_id)]
    result = await verify_chain(store.chain, time.time())
    assert result.ok and result.head_seq == 2
    periods = await off_periods(store.audit)
    assert len(periods) == 1 and off_since(periods) == periods[0].since

    await store.close()  # memory: the same state, reopened as it was left
    store = make(True)
    await store.open()
    try:
        [(_, _), (action, on_id)] = await switch_ids(store)
        assert action == chain.SWITCHED_ON
        [third] = await put(store, req(3))
        assert await chain_refs(store) == [*before, ("audit", off_id), ("audit", on_id),
                                           ("request", third.id)]
        assert (await verify_chain(store.chain, time.time())).ok
        [period] = await off_periods(store.audit)
        assert period.until is not None and period.until >= period.since
        assert off_since([period]) is None
    finally:
        await store.close()
