"""SQLite ``Intake``: new requests join the writer's group commit."""

from __future__ import annotations

from proxy import lifecycle
from proxy.store import chain
from proxy.store.errors import DuplicateKey
from proxy.store.records import NewRequest, StoredAttempt, StoredRequest
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.log import get_attempts, get_request
from proxy.store.sqlite.queries import QUERIES
from proxy.store.sqlite.rows import count_inserted, insert_row, row_to_request
from proxy.store.sqlite.writer import ChainedConnection


class SqliteIntake:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        row = insert_row(request, self._db.keys)
        # Encoded and hashed here, not in the writer's transaction (writer.InsertLink).
        link = chain.request_link(request) if self._db.chain else None

        try:
            # Most calls resubmit nothing: they join the group commit's one executemany.
            await self._db.insert(row, link)
            return None
        except DuplicateKey:
            if request.dedup_key is None:
                raise

        # A resubmission: one writer job, the look-up, the decision and the insert in its
        # transaction, so two racing resubmissions are decided one after the other.
        def op(c: ChainedConnection) -> StoredRequest | None:
            found = c.execute(QUERIES["request_by_dedup_key"], (request.dedup_key,)).fetchone()
            if found is not None:
                original = row_to_request(found, self._db.keys)
                if lifecycle.still_matches(original, settled_window_s, now):
                    return original
                c.execute(QUERIES["release_dedup_key"], (original.id,))
            c.execute(QUERIES["insert_request"], row)
            count_inserted(c, [row])
            if link is not None:
                c.add_links([link])
            return None

        return await self._db.write(op)

    async def count_queued(self, upstream: str) -> int:
        rows = await self._db.read(QUERIES["count_queued"], (upstream,))
        return int(rows[0][0])

    async def get(self, request_id: str) -> StoredRequest | None:
        return await get_request(self._db, request_id)

    async def attempts(self, request_id: str) -> list[StoredAttempt]:
        return await get_attempts(self._db, request_id)
