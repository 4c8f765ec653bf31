"""SQLite ``Chain``: the hash chain's entries (table ``chain``, schema v11, and a
request's own in its row, v14: ``chain_rows``), checkpoints and verifications.

Entries are appended by the writer (``writer.number_inserts`` for intake's rows,
``writer.link_pending`` for the links the other role objects' jobs add);
``chained_states`` is how they add a state change. Reads run a page at a time off the
event loop (entries on a connection of their own, records on the reader's), so a
verification of a long chain never holds the event loop for more than a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from proxy.store import chain
from proxy.store.chain import Break, ChainEntry, ChainHead, Checkpoint, Kind, Verification
from proxy.store.records import AuditEntry, StoredAttempt, StoredRequest
from proxy.store.sealing import BROKEN_LEAF, opened
from proxy.store.sqlite import chain_rows
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.queries import QUERIES, with_ids, with_where
from proxy.store.sqlite.rows import row_to_attempt, row_to_request
from proxy.store.sqlite.writer import ChainedConnection


def chained_states(c: ChainedConnection, request_ids: Iterable[str], before: str | None,
                   after: str, reason: str | None, at: float) -> None:
    """Add one state change per request (``before`` -> ``after``) to the transaction's
    chain links, in id order (as every backend does: the same moves, the same chain)."""
    c.add_links(chain.state_links(request_ids, before, after, reason, at))


def chained_audit(c: ChainedConnection, audit_id: int, at: float, actor: str, action: str,
                  target: str | None, detail: str | None) -> None:
    if c.chain_on:  # off, nothing to encode or hash
        c.add_links([chain.audit_link(AuditEntry(audit_id, at, actor, action, target,
                                                 detail))])


def mark_purged_in(c: ChainedConnection, kind: Kind, refs: Sequence[str], at: float) -> int:
    """``Chain.mark_purged`` inside the caller's writer job (a purge's transaction). A
    request's entry kept in its row (``chain_rows``) moves to the chain table, as its
    tombstone: a row's entry is never a tombstone, so a body emptied by hand with
    ``purged_at`` set still reads as a changed record."""
    marked = 0
    for start in range(0, len(refs), _PAGE):
        part = list(refs[start:start + _PAGE])
        if kind is Kind.REQUEST:
            marked += c.execute(with_ids(QUERIES["tombstone_row_entries"], len(part)),
                                (at, *part)).rowcount
            c.execute(with_ids(QUERIES["clear_row_entries"], len(part)), part)
        marked += c.execute(with_ids(QUERIES["mark_purged"], len(part)),
                            (at, kind.value, *part)).rowcount
    return marked


_PAGE = 500  # ids per IN (...) list: well below SQLite's limit of bound parameters


def _checkpoint(r: Any) -> Checkpoint:
    return Checkpoint(seq=r[0], head=bytes(r[1]), at=r[2], note=r[3])


class SqliteChain:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def chain_head(self) -> ChainHead:
        rows = await self._db.read(QUERIES["chain_head"])
        return ChainHead(0, chain.GENESIS) if not rows else ChainHead(rows[0][0],
                                                                       bytes(rows[0][1]))

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        # A page is read in a thread on a connection of its own, in one read transaction
        # (chain_rows): the chain table's entries and the rows' must be one snapshot.
        return await self._db.read_snapshot(
            lambda conn: chain_rows.entries_after(conn, after_seq, limit))

    async def current_leaves(self, entries: Sequence[ChainEntry]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for start in range(0, len(entries), _PAGE):
            out.extend(await self._leaves_of(entries[start:start + _PAGE]))
        return out

    async def _leaves_of(self, entries: Sequence[ChainEntry]) -> list[bytes | None]:
        """One page's leaves: the records it names (``chain.leaf_refs``), one query per
        kind."""
        attempt_of, request_ids, audit_ids = chain.leaf_refs(entries)
        rows: dict[str, StoredRequest] = {}
        attempts: dict[str, StoredAttempt] = {}
        audits: dict[str, bytes] = {}
        broken: set[str] = set()  # refs whose sealed value no longer opens: changed
        keys = self._db.keys
        if request_ids:
            found = await self._db.read(with_ids(QUERIES["requests_by_ids"],
                                                 len(request_ids)), tuple(request_ids))
            rows = {r.id: r for r in opened(found, lambda row: row_to_request(row, keys),
                                             lambda row: str(row[0]), broken)}
        if attempt_of:
            found = await self._db.read(with_ids(QUERIES["export_attempts"],
                                                 len(attempt_of)), tuple(attempt_of))
            attempts = {chain.attempt_ref(a.request_id, a.number): a for a in opened(
                found, lambda row: row_to_attempt(row, keys),
                lambda row: chain.attempt_ref(row[0], row[1]), broken)}
        if audit_ids:
            for row in await self._db.read(with_ids(QUERIES["audit_by_ids"], len(audit_ids)),
                                           tuple(audit_ids)):
                e = AuditEntry(*row)
                audits[str(e.id)] = chain.audit_link(e).leaf

        return [chain.leaf_now(e, unreadable=BROKEN_LEAF, broken=broken, requests=rows,
                               attempts=attempts, audits=audits) for e in entries]

    async def checkpoint(self, at: float, note: str | None = None) -> Checkpoint:
        def op(c: ChainedConnection) -> Checkpoint:
            row = c.execute(QUERIES["chain_head"]).fetchone()
            head = ChainHead(0, chain.GENESIS) if row is None else ChainHead(row[0],
                                                                             bytes(row[1]))
            c.execute(QUERIES["insert_checkpoint"], (head.seq, head.head, at, note))
            return Checkpoint(head.seq, head.head, at, note)

        return await self._db.write(op)

    async def checkpoints(self, *, head: bytes | None = None,
                          limit: int = 100) -> list[Checkpoint]:
        where, params = (["head=?"], (head,)) if head is not None else ([], ())
        rows = await self._db.read(with_where(QUERIES["checkpoints"], where), (*params, limit))
        return [_checkpoint(r) for r in rows]

    async def mark_purged(self, kind: Kind, refs: Sequence[str], at: float) -> int:
        wanted = list(refs)
        return await self._db.write(lambda c: mark_purged_in(c, kind, wanted, at))

    async def record_verification(self, result: Verification) -> None:
        b = result.broken
        params = (result.at, int(result.ok), result.head_seq, result.checked, result.from_seq,
                  b.seq if b else None, b.kind if b else None, b.ref if b else None,
                  b.problem if b else None)
        await self._db.write(lambda c: c.execute(QUERIES["insert_verification"], params))

    async def last_verification(self) -> Verification | None:
        rows = await self._db.read(QUERIES["last_verification"])
        if not rows:
            return None
        r = rows[0]
        broken = None if r[5] is None else Break(r[5], r[6] or "", r[7] or "", r[8] or "")
        return Verification(at=r[0], ok=bool(r[1]), head_seq=r[2], checked=r[3],
                            from_seq=r[4], broken=broken)
