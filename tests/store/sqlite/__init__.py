"""SQLite-only tests (the contract tests beside this package run on every backend)."""

from __future__ import annotations

from proxy.store.backend import Backend
from proxy.store.records import NewRequest
from proxy.store.sqlite.db import SqliteDb
from proxy.store.sqlite.rows import insert_row


async def insert(backend: Backend, request: NewRequest) -> None:
    """The bare insert the intake's group commit batches (no dedup decision): a taken
    dedup key raises DuplicateKey, as the writer reports it."""
    db = backend.engine
    assert isinstance(db, SqliteDb)
    await db.insert(insert_row(request, db.keys))
