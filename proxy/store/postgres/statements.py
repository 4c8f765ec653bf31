"""queries.sql, rendered once at import: its placeholders filled with the request columns
and lifecycle's status sets (the rules live there, not in the SQL)."""

from __future__ import annotations

from proxy import lifecycle
from proxy.store.postgres.rows import columns
from proxy.store.postgres.sql import load, render
from proxy.store.records import UNSENT_CALLBACKS

Q: dict[str, str] = render(load("queries.sql"), {
    "COLUMNS": columns(), "COLUMNS_OF_Q": columns("q"), "COLUMNS_OF_R": columns("r"),
    "BLOCKS_LATER": lifecycle.sql_in(lifecycle.BLOCKS_LATER),
    "STUCK": lifecycle.sql_in(lifecycle.STUCK),
    "QUEUED": lifecycle.sql_in(lifecycle.QUEUED),
    "OPEN": lifecycle.sql_in(lifecycle.OPEN),
    "LIVE": lifecycle.sql_in(lifecycle.LIVE),
    "FINAL": lifecycle.sql_in(lifecycle.FINAL),
    "UNSENT_CALLBACKS": "(" + ",".join(f"'{s.value}'" for s in sorted(UNSENT_CALLBACKS))
                        + ")",
})
