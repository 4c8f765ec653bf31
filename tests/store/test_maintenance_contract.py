"""Maintenance-window verbs: one contract for every store backend (see conftest BACKENDS)."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.store.backend import Backend
from proxy.store.errors import StoreUnavailable
from proxy.store.protocols import Schedules
from proxy.store.records import MaintenanceWindow

T0 = 1_800_000_000.0


def windows_of(store: Backend) -> Schedules:
    return store.schedules


async def add(store: Backend, upstream: str = "antrean", starts: float = T0,
              ends: float | None = T0 + 3600, reason: str = "BPJS announced downtime"
              ) -> MaintenanceWindow:
    return await windows_of(store).add_maintenance_window(
        upstream, starts, ends, reason, "ops@rs", T0 - 10)


async def test_added_window_is_returned_with_an_id(store: Backend) -> None:
    w = await add(store)
    assert w.id >= 1
    assert (w.upstream, w.starts_at, w.ends_at, w.reason, w.created_by, w.created_at,
            w.cancelled_at) == ("antrean", T0, T0 + 3600, "BPJS announced downtime",
                                "ops@rs", T0 - 10, None)
    assert await windows_of(store).maintenance_windows() == [w]


async def test_ids_are_distinct_and_listing_is_ordered_by_start(store: Backend) -> None:
    late = await add(store, starts=T0 + 100)
    early = await add(store, starts=T0)
    other = await add(store, upstream="vclaim", starts=T0 + 50)
    assert len({late.id, early.id, other.id}) == 3
    assert await windows_of(store).maintenance_windows() == [early, other, late]
    assert await windows_of(store).maintenance_windows(upstream="vclaim") == [other]


async def test_open_ended_window(store: Backend) -> None:
    w = await add(store, ends=None)
    assert w.ends_at is None
    assert await windows_of(store).maintenance_windows(in_force_after=T0 + 1e6) == [w]


async def test_in_force_after_drops_ended_and_cancelled(store: Backend) -> None:
    ms = windows_of(store)
    ended = await add(store, starts=T0, ends=T0 + 10)
    current = await add(store, starts=T0, ends=T0 + 100)
    to_cancel = await add(store, starts=T0, ends=T0 + 100)
    cancelled = await ms.cancel_maintenance_window(to_cancel.id, T0 + 5)
    assert cancelled is not None
    assert await ms.maintenance_windows(in_force_after=T0 + 4) == [ended, current, cancelled]
    assert await ms.maintenance_windows(in_force_after=T0 + 10) == [current]
    assert await ms.maintenance_windows() == [ended, current, cancelled]


async def test_cancel_records_the_first_time_only(store: Backend) -> None:
    ms = windows_of(store)
    w = await add(store)
    first = await ms.cancel_maintenance_window(w.id, T0 + 1)
    again = await ms.cancel_maintenance_window(w.id, T0 + 2)
    assert first is not None and first.cancelled_at == T0 + 1
    assert again == first
    assert await ms.maintenance_windows() == [first]


async def test_cancel_unknown_window_returns_none(store: Backend) -> None:
    assert await windows_of(store).cancel_maintenance_window(12345, T0) is None


async def test_window_activity() -> None:
    w = MaintenanceWindow(id=1, upstream="antrean", starts_at=T0, ends_at=T0 + 10,
                          reason="", created_by="ops", created_at=T0)
    assert not w.active_at(T0 - 1)
    assert w.active_at(T0)
    assert not w.active_at(T0 + 10)
    assert w.over_at() == T0 + 10
    c = dataclasses.replace(w, cancelled_at=T0 + 5)
    assert c.active_at(T0 + 4) and not c.active_at(T0 + 5)
    assert c.over_at() == T0 + 5


async def test_closed_store_refuses(store: Backend) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await windows_of(store).maintenance_windows()
    await store.open()
