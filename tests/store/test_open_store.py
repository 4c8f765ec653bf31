"""``open_store`` picks the backend by the URL's scheme."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import StoreConfig
from proxy.store import UnknownStoreScheme, open_store
from proxy.store.memory.state import MemoryState
from proxy.store.postgres.database import Database
from proxy.store.sqlite.db import SqliteDb


def test_a_sqlite_url_opens_the_sqlite_backend_on_its_path(tmp_path: Path) -> None:
    backend = open_store(StoreConfig(url=f"sqlite:///{tmp_path / 'q.db'}"))
    assert isinstance(backend.engine, SqliteDb) and backend.engine.path == tmp_path / "q.db"


def test_a_memory_url_opens_the_in_memory_backend() -> None:
    assert isinstance(open_store(StoreConfig(url="memory://")).engine, MemoryState)


def test_an_unknown_scheme_is_named_in_the_error() -> None:
    with pytest.raises(UnknownStoreScheme, match=r"'mysql'.*sqlite:///PATH"):
        open_store(StoreConfig(url="mysql://db/tenang"))



def test_a_postgresql_url_opens_the_postgresql_backend_shared_by_instances() -> None:
    backend = open_store(StoreConfig(url="postgresql://tenang@db:5432/tenang"))
    assert isinstance(backend.engine, Database) and backend.coordination.shared
