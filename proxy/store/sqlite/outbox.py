"""SQLite ``Outbox`` (table ``callbacks``, schema v4).

Rows are inserted by the other role objects' transitions (``rows.queue_callback``); these
verbs lease and finish them. Claims and finishes go through the group-commit writer.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from proxy.store.errors import Conflict
from proxy.store.records import CallbackStatus, StoredCallback
from proxy.store.rules import finished_status
from proxy.store.sqlite.db import SqliteDb

_COLUMNS = ("id, request_id, upstream, url, payload, status, attempts, next_attempt_at, "
            "lease_expires_at, last_error, created_at, updated_at")
# Both branches are served by callbacks_due (status, next_attempt_at): the due pending
# rows, and the few 'sending' rows (only a crashed sender leaves an expired lease).
_DUE = ("(status='pending' AND next_attempt_at<=?) "
        "OR (status='sending' AND lease_expires_at<?)")
_CLAIM = (
    "UPDATE callbacks SET status='sending', attempts=attempts+1, lease_expires_at=?, "
    f"updated_at=? WHERE id IN (SELECT id FROM callbacks WHERE {_DUE} "
    f"ORDER BY next_attempt_at, id LIMIT ?) RETURNING {_COLUMNS}")
_FINISH = (
    "UPDATE callbacks SET status=?, last_error=?, next_attempt_at=COALESCE(?, next_attempt_at),"
    " lease_expires_at=NULL, updated_at=? WHERE id=? AND status='sending'")
_NEXT = (
    "SELECT MIN(t) FROM ("
    "  SELECT MIN(next_attempt_at) AS t FROM callbacks WHERE status='pending'"
    "  UNION ALL SELECT MIN(lease_expires_at) FROM callbacks WHERE status='sending')")


def _callback(r: sqlite3.Row | tuple[Any, ...]) -> StoredCallback:
    return StoredCallback(
        id=r[0], request_id=r[1], upstream=r[2], url=r[3], payload=bytes(r[4]),
        status=CallbackStatus(r[5]), attempts=r[6], next_attempt_at=r[7],
        lease_expires_at=r[8], last_error=r[9], created_at=r[10], updated_at=r[11])


class SqliteOutbox:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def claim_callbacks(self, now: float, limit: int,
                              lease_until: float) -> list[StoredCallback]:
        rows = await self._db.write(lambda c: c.execute(
            _CLAIM, (lease_until, now, now, now, limit)).fetchall())
        # RETURNING gives no order: restore "oldest due first".
        return sorted((_callback(r) for r in rows), key=lambda cb: (cb.next_attempt_at, cb.id))

    async def finish_callback(self, callback_id: int, delivered: bool,
                              error: str | None, next_attempt_at: float | None,
                              now: float) -> None:
        status = finished_status(delivered, next_attempt_at)
        retry_at = next_attempt_at if status is CallbackStatus.PENDING else None
        n = await self._db.write(lambda c: c.execute(
            _FINISH, (status.value, error, retry_at, now, callback_id)).rowcount)
        if not n:
            raise Conflict(f"callback {callback_id} is not being sent")

    async def next_callback_at(self) -> float | None:
        rows = await self._db.read(_NEXT)
        value = rows[0][0] if rows else None
        return None if value is None else float(value)
