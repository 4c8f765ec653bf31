"""The Outbox role on PostgreSQL: outcome callbacks to the SIMRS, queued by the moves
they report (queue.py, operator.py), leased here to one sender at a time."""

from __future__ import annotations

import asyncpg

from proxy.store.errors import Conflict
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q
from proxy.store.records import CallbackStatus, StoredCallback
from proxy.store.rules import finished_status
from proxy.store.sealing import Keyring, payload_aad


def _callback(r: asyncpg.Record, keys: Keyring) -> StoredCallback:
    return StoredCallback(
        id=r["id"], request_id=r["request_id"], upstream=r["upstream"], url=r["url"],
        payload=keys.open(bytes(r["payload"]), r["key_id"], payload_aad(r["request_id"])),
        status=CallbackStatus(r["status"]),
        attempts=r["attempts"], next_attempt_at=r["next_attempt_at"],
        lease_expires_at=r["lease_expires_at"], last_error=r["last_error"],
        created_at=r["created_at"], updated_at=r["updated_at"])


class PostgresOutbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_callbacks(self, now: float, limit: int,
                              lease_until: float) -> list[StoredCallback]:
        with translated():
            rows = await self._db.pool.fetch(Q["claim_callbacks"], now, limit, lease_until)
        # RETURNING gives no order: restore "oldest due first".
        return sorted((_callback(r, self._db.keys) for r in rows),
                      key=lambda c: (c.next_attempt_at, c.id))

    async def finish_callback(self, callback_id: int, delivered: bool, error: str | None,
                              next_attempt_at: float | None, now: float) -> None:
        status = finished_status(delivered, next_attempt_at)
        retry_at = next_attempt_at if status is CallbackStatus.PENDING else None
        with translated():
            done = await self._db.pool.execute(Q["finish_callback"], callback_id, status.value,
                                               error, retry_at, now)
        if done.endswith(" 0"):
            raise Conflict(f"callback {callback_id} is not being sent")

    async def next_callback_at(self) -> float | None:
        with translated():
            value = await self._db.pool.fetchval(Q["next_callback_at"])
        return None if value is None else float(value)
