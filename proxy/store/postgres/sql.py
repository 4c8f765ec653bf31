"""The PostgreSQL backend's named SQL blocks (``proxy.store.named_sql``, shared with the
SQLite backend)."""

from __future__ import annotations

from proxy.store.named_sql import blocks, render
from proxy.store.named_sql import load as load_from

__all__ = ["blocks", "load", "render"]


def load(name: str) -> dict[str, str]:
    """The blocks of the package file ``name`` (e.g. "schema.sql")."""
    return load_from(__package__, name)
