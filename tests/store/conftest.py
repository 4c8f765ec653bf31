"""Store fixtures: one opened store per backend, so every contract test runs on each.

Add a backend by adding one entry to ``BACKENDS``: a factory that gets ``tmp_path`` and
returns an unopened store (raise ``pytest.skip`` inside it when the backend's server is
not available, e.g. a PostgreSQL factory without a DSN in the environment).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from proxy.store.base import Store
from proxy.store.memory.store import MemoryStore
from proxy.store.sqlite.store import SqliteStore


def _memory(tmp_path: Path) -> Store:
    return MemoryStore()


def _sqlite(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "queue" / "tenang.db", busy_timeout_ms=2_000)


BACKENDS: dict[str, Callable[[Path], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = BACKENDS[request.param](tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
