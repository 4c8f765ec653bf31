"""PostgreSQL ``Sealing``: `tenang rekey`'s walk, one batch of requests per transaction.

The batch's rows are locked (``FOR UPDATE``) while they are re-sealed, so another
instance's write to them (a purge) waits for the batch, and every instance keeps
serving while the walk runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.statements import Q
from proxy.store.records import ResealBatch
from proxy.store.sealing import body_aad, payload_aad, response_aad


class PostgresSealing:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def reseal(self, after_id: str | None, limit: int) -> ResealBatch:
        keys = self._db.keys
        current = keys.current

        with translated():
            async with self._db.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(Q["reseal_requests"], after_id or "", limit)
                if not rows:
                    return ResealBatch(0, 0, None)
                ids = [r[0] for r in rows]
                requests = [(r[0], new) for r in rows
                            if (new := keys.resealed(bytes(r[1]), r[2], body_aad(r[0])))
                            is not None]
                attempts = [(r[0], r[1], new)
                            for r in await conn.fetch(Q["reseal_attempts"], ids)
                            if (new := keys.resealed(bytes(r[2]), r[3], response_aad(r[0], r[1])))
                            is not None]
                callbacks = [(r[0], new)
                             for r in await conn.fetch(Q["reseal_callbacks"], ids)
                             if (new := keys.resealed(bytes(r[2]), r[3], payload_aad(r[1])))
                             is not None]
                if requests:
                    await conn.execute(Q["resealed_requests"], [i for i, _ in requests],
                                       [b for _, b in requests], current)
                if attempts:
                    await conn.execute(Q["resealed_attempts"], [i for i, _, _ in attempts],
                                       [n for _, n, _ in attempts],
                                       [b for _, _, b in attempts], current)
                if callbacks:
                    await conn.execute(Q["resealed_callbacks"], [i for i, _ in callbacks],
                                       [b for _, b in callbacks], current)
        return ResealBatch(len(rows), len(requests) + len(attempts) + len(callbacks),
                           ids[-1] if len(rows) == limit else None)

    async def sealed_counts(self) -> Mapping[str | None, int]:
        counts: dict[str | None, int] = {}
        with translated():
            for key_id, n in await self._db.pool.fetch(Q["sealed_counts"]):
                counts[key_id] = counts.get(key_id, 0) + int(n)
        return counts

    async def retire_keys(self, key_ids: Sequence[str], now: float) -> None:
        if key_ids:
            with translated():
                await self._db.pool.execute(Q["retire_sealing_keys"], list(key_ids), now)
