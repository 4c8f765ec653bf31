"""PostgreSQL ``Chain``: not built yet (issue 14, scope 1 landed for SQLite first).

The encoding and the walk are backend-neutral (``proxy.store.chain``): the PostgreSQL
work appends the same links in the transaction of each write and reads them here. Until
then every verb says so, rather than pretending an empty chain verifies (``serve``
refuses this backend anyway: ``postgres.INCOMPLETE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from proxy.store.chain import ChainEntry, ChainHead, Checkpoint, Kind, Verification
from proxy.store.errors import StoreError

NOT_YET = "the hash chain is not kept on a PostgreSQL store yet"


def _refuse() -> NoReturn:
    raise StoreError(NOT_YET)


class PostgresChain:
    async def chain_head(self) -> ChainHead:
        _refuse()

    async def chain_entries(self, after_seq: int, limit: int) -> list[ChainEntry]:
        _refuse()

    async def current_leaves(self, entries: Sequence[ChainEntry]) -> list[bytes | None]:
        _refuse()

    async def checkpoint(self, at: float, note: str | None = None) -> Checkpoint:
        _refuse()

    async def checkpoints(self, *, head: bytes | None = None,
                          limit: int = 100) -> list[Checkpoint]:
        _refuse()

    async def mark_purged(self, kind: Kind, refs: Sequence[str], at: float) -> int:
        _refuse()

    async def tombstones(self, kind: Kind, refs: Sequence[str]) -> dict[str, float]:
        _refuse()

    async def record_verification(self, result: Verification) -> None:
        _refuse()

    async def last_verification(self) -> Verification | None:
        _refuse()
