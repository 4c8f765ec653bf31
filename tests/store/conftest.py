"""Store fixtures: one opened backend per kind, so every contract test runs on each.

Add a backend by adding one entry to ``BACKENDS``: a factory that gets ``tmp_path`` and
returns an unopened ``Backend`` (raise ``pytest.skip`` inside it when the backend's
server is not available, e.g. a PostgreSQL factory without a DSN in the environment).
Contract tests reach the verbs through the roles (``store.queue.claim_due(...)``), as
the consumers do.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from proxy.config import StoreConfig
from proxy.store.backend import Backend
from proxy.store.memory import memory_backend
from proxy.store.postgres.backend import postgres_backend
from proxy.store.sealing import PLAINTEXT, Keyring
from proxy.store.sqlite import sqlite_backend
from tests.pg_support import schema_now


def _memory(tmp_path: Path) -> Backend:
    return memory_backend()


def _sqlite(tmp_path: Path, keys: Keyring = PLAINTEXT) -> Backend:
    return sqlite_backend(tmp_path / "queue" / "tenang.db", busy_timeout_ms=2_000, keys=keys)


def _postgres(tmp_path: Path, keys: Keyring = PLAINTEXT) -> Backend:
    """On a schema of its own in the database of TENANG_TEST_PG_DSN (tests/pg_support.py:
    skipped without one, except under CI, where .ci/run always provides one)."""
    return postgres_backend(StoreConfig(url=schema_now(), pool_min=1, pool_max=4,
                                        statement_timeout_s=10.0), keys)


# Encryption at rest on (proxy.store.sealing): every verb must hand back what it was
# given, sealed on the way in and opened on the way out.
TEST_KEYS = Keyring.from_text("contract:" + base64.b64encode(bytes(range(32))).decode())

BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite-sealed": lambda tmp_path: _sqlite(tmp_path, TEST_KEYS),
    "postgres": _postgres,
    "postgres-sealed": lambda tmp_path: _postgres(tmp_path, TEST_KEYS),
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    backend = BACKENDS[request.param](tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
