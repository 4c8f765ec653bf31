"""SQLite ``Outbox`` (table ``callbacks``, schema v4).

Rows are inserted by the other role objects' transitions (``rows.queue_callback``); these
verbs lease and finish them. Claims and finishes go through the group-commit writer.
"""

from __future__ import annotations

from proxy.store.errors import Conflict
from proxy.store.records import CallbackStatus, StoredCallback
from proxy.store.rules import finished_status
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.rows import row_to_callback


class SqliteOutbox:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def claim_callbacks(self, now: float, limit: int,
                              lease_until: float) -> list[StoredCallback]:
        rows = await self._db.write(lambda c: c.execute(
            QUERIES["claim_callbacks"], (lease_until, now, now, now, limit)).fetchall())
        # RETURNING gives no order: restore "oldest due first".
        return sorted((row_to_callback(r, self._db.keys) for r in rows),
                      key=lambda cb: (cb.next_attempt_at, cb.id))

    async def finish_callback(self, callback_id: int, delivered: bool,
                              error: str | None, next_attempt_at: float | None,
                              now: float) -> None:
        status = finished_status(delivered, next_attempt_at)
        retry_at = next_attempt_at if status is CallbackStatus.PENDING else None
        n = await self._db.write(lambda c: c.execute(
            QUERIES["finish_callback"], (status.value, error, retry_at, now, callback_id)).rowcount)
        if not n:
            raise Conflict(f"callback {callback_id} is not being sent")

    async def next_callback_at(self) -> float | None:
        rows = await self._db.read(QUERIES["next_callback_at"])
        value = rows[0][0] if rows else None
        return None if value is None else float(value)
