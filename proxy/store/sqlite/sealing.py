"""SQLite ``Sealing``: `tenang rekey`'s walk, one batch of requests per writer job.

A batch's reads and writes are one transaction of the writer (BEGIN IMMEDIATE), and each
update is a compare-and-set on the key id, so a serving Tenang's writes on the same file
(its purge, say) are never overwritten with a stale value: the walk can run beside it.

A sealed value is longer than the plaintext it replaces, so SQLite moves the row and
frees the cells the plaintext was in: the walk's connection sets ``secure_delete`` so
those are overwritten with zeros, and at the end the WAL is checkpointed and truncated,
so a store encrypted after the fact keeps no old body in its file or its WAL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proxy.store.records import ResealBatch
from proxy.store.sealing import body_aad, payload_aad, response_aad
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES, with_ids
from proxy.store.sqlite.writer import ChainedConnection


class SqliteSealing:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def reseal(self, after_id: str | None, limit: int) -> ResealBatch:
        keys = self._db.keys
        current = keys.current

        def op(c: ChainedConnection) -> ResealBatch:
            c.execute("PRAGMA secure_delete=ON")  # this process's writer: the walk's own
            rows = c.execute(QUERIES["reseal_requests"], (after_id or "", limit)).fetchall()
            if not rows:
                return ResealBatch(0, 0, None)
            ids = [r[0] for r in rows]
            done = 0
            for rid, body, key_id in rows:
                new = keys.resealed(bytes(body), key_id, body_aad(rid))
                if new is not None:
                    done += c.execute(QUERIES["resealed_request"],
                                      (new, current, rid, key_id)).rowcount
            in_ids = with_ids(QUERIES["reseal_attempts"], len(ids))
            for rid, number, body, key_id in c.execute(in_ids, ids).fetchall():
                new = keys.resealed(bytes(body), key_id, response_aad(rid, number))
                if new is not None:
                    done += c.execute(QUERIES["resealed_attempt"],
                                      (new, current, rid, number, key_id)).rowcount
            in_ids = with_ids(QUERIES["reseal_callbacks"], len(ids))
            for cid, rid, payload, key_id in c.execute(in_ids, ids).fetchall():
                new = keys.resealed(bytes(payload), key_id, payload_aad(rid))
                if new is not None:
                    done += c.execute(QUERIES["resealed_callback"],
                                      (new, current, cid, key_id)).rowcount
            return ResealBatch(len(rows), done, ids[-1] if len(rows) == limit else None)

        return await self._db.write(op)

    async def sealed_counts(self) -> Mapping[str | None, int]:
        counts: dict[str | None, int] = {}
        for key_id, n in await self._db.read(QUERIES["sealed_counts"]):
            counts[key_id] = counts.get(key_id, 0) + int(n)
        return counts

    async def retire_keys(self, key_ids: Sequence[str], now: float) -> None:
        ids = list(key_ids)
        if ids:
            sql = with_ids(QUERIES["retire_sealing_keys"], len(ids))
            await self._db.write(lambda c: c.execute(sql, (now, *ids)))
        # The walk is over: the pages it replaced leave the WAL (a reader a serving
        # Tenang holds open may keep the checkpoint from finishing: then at its next).
        await self._db.read("PRAGMA wal_checkpoint(TRUNCATE)")
