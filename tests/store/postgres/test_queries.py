"""queries.sql holds no statement nobody runs, and the code names none it lacks: each
block is used by the backend's modules, each ``Q["name"]`` they use is a block; every
placeholder is filled (rendering fails at import otherwise)."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.store.postgres.sql import load
from proxy.store.postgres.statements import Q

PACKAGE = Path(__file__).resolve().parents[3] / "proxy" / "store" / "postgres"


def test_every_named_query_is_used_and_every_used_one_exists() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.glob("*.py"))
    used = set(re.findall(r'Q\["([a-z0-9_]+)"\]', source))

    assert set(load("queries.sql")) == used


def test_no_placeholder_is_left_unfilled() -> None:
    assert not [name for name, sql in Q.items() if re.search(r"\{[A-Z_]+\}", sql)]
