"""[store]: a SQLite path or a PostgreSQL URL, the PostgreSQL password from the
environment (never the file), pool limits that can work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.config import ConfigError, parse_config


def config_with(store: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    raw = {"store": store, "upstreams": [{"name": "antrean", "prefix": "/antreanrs",
                                          "target": "https://example.test/antreanrs"}]}
    return parse_config(raw, Path("/etc/tenang"), env or {})


def test_a_postgresql_url_is_kept_as_written() -> None:
    url = "postgresql://tenang@db.rs.local:5432/tenang"
    store = config_with({"url": url, "pool_min": 1, "pool_max": 20, "migrate": False}).store

    assert store.is_postgres
    assert (store.url, store.pool_min, store.pool_max, store.migrate) == (url, 1, 20, False)
    assert store.password is None


def test_the_password_comes_from_the_variable_password_env_names() -> None:
    store = config_with({"url": "postgresql://tenang@db/tenang", "password_env": "PGPW"},
                        {"PGPW": "s3cret"}).store

    assert store.password == "s3cret"
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize(("store", "message"), [
    ({"url": "postgresql://tenang:s3cret@db/tenang"}, "store.url: holds a password"),
    ({"url": "postgresql://tenang@db"}, "store.url: names no database"),
    ({"url": "postgresql://tenang@db/"}, "store.url: names no database"),
    ({"url": "postgresql:///tenang"}, "store.url: names no host"),
    ({"url": "postgresql://db:port/tenang"}, "store.url: not a valid URL"),
    ({"url": "postgres://db/tenang"}, 'store.url: must be "sqlite:///PATH" or "postgresql://'),
    ({"url": "postgresql://db/t", "password_env": "PGPW"},
     "store.password_env: PGPW is not set in the environment"),
    ({"pool_min": 0}, "store.pool_min: must be >= 1"),
    ({"pool_min": 5, "pool_max": 4}, "store.pool_max: must be >= store.pool_min"),
    ({"connect_timeout_s": 0}, "store.connect_timeout_s: must be > 0"),
    ({"statement_timeout_s": -1.0}, "store.statement_timeout_s: must be > 0"),
])
def test_a_store_that_cannot_work_is_named(store: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(store)

    assert str(caught.value).startswith(message)


def test_a_sqlite_store_is_unchanged() -> None:
    store = config_with({"url": "sqlite:///data/t.db"}).store

    assert not store.is_postgres
    assert store.sqlite_path == Path("/etc/tenang/data/t.db")
