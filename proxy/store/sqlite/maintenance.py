"""Maintenance-window verbs of SqliteStore (table ``maintenance_windows``, schema v3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from proxy.store.maintenance_base import MaintenanceWindow

T = TypeVar("T")

_COLUMNS = "id, upstream, starts_at, ends_at, reason, created_by, created_at, cancelled_at"


class _Sqlite(Protocol):
    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T: ...


def _window(r: sqlite3.Row | tuple[Any, ...]) -> MaintenanceWindow:
    return MaintenanceWindow(id=r[0], upstream=r[1], starts_at=r[2], ends_at=r[3],
                             reason=r[4] or "", created_by=r[5], created_at=r[6],
                             cancelled_at=r[7])


class SqliteMaintenanceMixin:
    async def add_maintenance_window(
        self: _Sqlite, upstream: str, starts_at: float, ends_at: float | None, reason: str,
        created_by: str, created_at: float,
    ) -> MaintenanceWindow:
        row = await self._write(lambda c: c.execute(
            "INSERT INTO maintenance_windows (upstream, starts_at, ends_at, reason, "
            f"created_by, created_at) VALUES (?,?,?,?,?,?) RETURNING {_COLUMNS}",
            (upstream, starts_at, ends_at, reason, created_by, created_at)).fetchone())
        return _window(row)

    async def cancel_maintenance_window(
        self: _Sqlite, window_id: int, cancelled_at: float
    ) -> MaintenanceWindow | None:
        def op(c: sqlite3.Connection) -> tuple[Any, ...] | None:
            c.execute("UPDATE maintenance_windows SET cancelled_at=? "
                      "WHERE id=? AND cancelled_at IS NULL", (cancelled_at, window_id))
            row: tuple[Any, ...] | None = c.execute(
                f"SELECT {_COLUMNS} FROM maintenance_windows WHERE id=?",
                (window_id,)).fetchone()
            return row

        row = await self._write(op)
        return None if row is None else _window(row)

    async def maintenance_windows(
        self: _Sqlite, *, upstream: str | None = None, in_force_after: float | None = None
    ) -> list[MaintenanceWindow]:
        where, params = ["1=1"], list[Any]()
        if upstream is not None:
            where.append("upstream=?")
            params.append(upstream)
        if in_force_after is not None:
            where.append("(ends_at IS NULL OR ends_at>?) AND "
                         "(cancelled_at IS NULL OR cancelled_at>?)")
            params += [in_force_after, in_force_after]
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM maintenance_windows WHERE {' AND '.join(where)} "
            "ORDER BY starts_at, id", tuple(params))
        return [_window(r) for r in rows]
