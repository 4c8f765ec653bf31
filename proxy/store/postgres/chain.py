"""The Chain role on PostgreSQL: the hash chain's entries (schema v7 ``chain``, appended
by every write in its own transaction: ``chain_links``), checkpoints and verifications.

Reads are a page at a time (the walk's page of entries, then the records they name in
one query per kind), so verifying a long chain holds neither memory nor a connection for
long; Tenang may be serving meanwhile, on this instance or others.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from proxy.store import chain
from proxy.store.chain import Break, ChainEntry, ChainHead, Checkpoint, Kind, Verification
from proxy.store.postgres.chain_links import mark_purged_in
from proxy.store.postgres.database import Database
from proxy.store.postgres.errors import translated
from proxy.store.postgres.rows import row_to_attempt, row_to_request
from proxy.store.postgres.statements import Q
from proxy.store.records import AuditEntry
from proxy.store.sealing import BROKEN_LEAF, opened


def _entry(r: asyncpg.Record) -> ChainEntry:
    return ChainEntry(seq=r["seq"], kind=Kind(r["kind"]), ref=r["ref"], leaf=bytes(r["leaf"]),
                      head=bytes(r["head"]), purged_at=r["purged_at"],
                      record=None if r["record"] is None else bytes(r["record"]))


def _checkpoint(r: asyncpg.Record) -> Checkpoint:
    return Checkpoint(seq=r["seq"], head=bytes(r["head"]), at=r["at"], note=r["note"])


def _head(r: asyncpg.Record | None) -> ChainHead:
    return ChainHead(0, chain.GENESIS) if r is None else ChainHead(r["seq"], bytes(r["head"]))


class PostgresChain:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def chain_head(self) -> ChainHead:
        with translated():
            return _head(await self._db.pool.fetchrow(Q["chain_head"]))

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        with translated():
            rows = await self._db.pool.fetch(Q["chain_entries"], after_seq, limit)
        return [_entry(r) for r in rows]

    async def current_leaves(self, entries: Sequence[ChainEntry]) -> list[bytes | None]:
        """The records the entries name (``chain.leaf_refs``), one query per kind."""
        attempt_of, request_ids, audit_ids = chain.leaf_refs(entries)
        broken: set[str] = set()  # refs whose sealed value no longer opens: changed
        keys = self._db.keys
        with translated():
            # One snapshot: an attempt and its request's row as of the same moment.
            async with self._db.pool.acquire() as conn, conn.transaction(
                    isolation="repeatable_read", readonly=True):
                found = await conn.fetch(Q["requests_by_ids"], request_ids) \
                    if request_ids else []
                rows = {r.id: r for r in opened(found, lambda row: row_to_request(row, keys),
                                                 lambda row: str(row["id"]), broken)}
                found = await conn.fetch(Q["attempts_of_requests"], attempt_of) \
                    if attempt_of else []
                attempts = {chain.attempt_ref(a.request_id, a.number): a for a in opened(
                    found, lambda row: row_to_attempt(row, keys),
                    lambda row: chain.attempt_ref(row[0], row[1]), broken)}
                audits = {str(e.id): chain.audit_link(e).leaf
                          for e in (AuditEntry(*r) for r in await conn.fetch(
                              Q["audit_by_ids"], audit_ids))} if audit_ids else {}

        return [chain.leaf_now(e, unreadable=BROKEN_LEAF, broken=broken, requests=rows,
                               attempts=attempts, audits=audits) for e in entries]

    async def checkpoint(self, at: float, note: str | None = None) -> Checkpoint:
        with translated():
            row = await self._db.pool.fetchrow(Q["insert_checkpoint"], at, note)
        assert row is not None  # chain_head has its one row from schema v7 on
        return _checkpoint(row)

    async def checkpoints(self, *, head: bytes | None = None,
                          limit: int = 100) -> list[Checkpoint]:
        with translated():
            rows = await self._db.pool.fetch(Q["checkpoints"], head, limit)
        return [_checkpoint(r) for r in rows]

    async def mark_purged(self, kind: Kind, refs: Sequence[str], at: float) -> int:
        with translated():
            async with self._db.pool.acquire() as conn:
                return await mark_purged_in(conn, kind, refs, at)

    async def record_verification(self, result: Verification) -> None:
        b = result.broken
        with translated():
            await self._db.pool.execute(
                Q["insert_verification"], result.at, int(result.ok), result.head_seq,
                result.checked, result.from_seq, b.seq if b else None, b.kind if b else None,
                b.ref if b else None, b.problem if b else None)

    async def last_verification(self) -> Verification | None:
        with translated():
            r = await self._db.pool.fetchrow(Q["last_verification"])
        if r is None:
            return None
        broken = None if r["broken_seq"] is None else Break(
            r["broken_seq"], r["broken_kind"] or "", r["broken_ref"] or "", r["problem"] or "")
        return Verification(at=r["at"], ok=bool(r["ok"]), head_seq=r["head_seq"],
                            checked=r["checked"], from_seq=r["from_seq"], broken=broken)

