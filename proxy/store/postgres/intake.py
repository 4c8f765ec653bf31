"""The Intake role on PostgreSQL: a new request stored (committed in groups,
group_insert.py), or its original found when it resubmits one; the queue's length.

A request whose dedup key is taken is decided alone, in a transaction that locks the
original, so concurrent resubmissions of one key store exactly one new request."""

from __future__ import annotations

from proxy import lifecycle
from proxy.store import chain
from proxy.store.errors import DuplicateKey
from proxy.store.postgres.chain_links import chain_on
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.log import PostgresLog
from proxy.store.postgres.rows import insert_arrays, row_to_request
from proxy.store.postgres.statements import Q
from proxy.store.records import NewRequest, StoredAttempt, StoredRequest

# A resubmission loses the key to a racing one at most this often before giving up.
_DEDUP_ROUNDS = 5


class PostgresIntake:
    """The Intake role: store a new request (or find its original), count the queue."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._log = PostgresLog(db)

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        # Most calls resubmit nothing: they join the next batch.
        if await self._db.inserts.insert(request):
            return None
        for _ in range(_DEDUP_ROUNDS):
            decided, original = await self._resubmission(request, settled_window_s, now)
            if decided:
                return original
        raise DuplicateKey(f"dedup key {request.dedup_key} kept changing hands")

    async def _resubmission(self, request: NewRequest, settled_window_s: float,
                            now: float) -> tuple[bool, StoredRequest | None]:
        """(decided, original): the look-up, the decision and the insert in one
        transaction, the original locked, so racing resubmissions go one at a time."""
        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                found = await conn.fetchrow(Q["request_by_dedup_key_locked"],
                                            request.dedup_key)
                if found is not None:
                    original = row_to_request(found, self._db.keys)
                    if lifecycle.still_matches(original, settled_window_s, now):
                        return True, original
                    await conn.execute(Q["clear_dedup_key"], original.id)
                links = [chain.request_link(request)] if chain_on(conn) else []
                stored = await conn.fetch(Q["insert_requests"],
                                          *insert_arrays([request], links, self._db.keys))
                # Nothing stored: another resubmission took the key in between; decide
                # again against that one.
                return bool(stored), None

    async def count_queued(self, upstream: str) -> int:
        with translated():
            return int(await self._db.pool.fetchval(Q["count_queued"], upstream))

    async def get(self, request_id: str) -> StoredRequest | None:
        return await self._log.get(request_id)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        return await self._log.attempts(request_id)
