"""The SQLite backend's statements, loaded once from ``queries.sql`` (named blocks).

Everything the backend sends to SQLite is in that one file, readable as SQL and diffable
against another dialect's (``proxy.store.named_sql`` reads it). At load the column lists
and the status lists (rendered from ``proxy.lifecycle``'s sets, so each is spelled once)
are filled in; ``{ids}``, ``{where}`` and ``{rows}`` are left for the call (``with_ids``,
``with_where``, ``with_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from proxy import lifecycle
from proxy.store.named_sql import load, render
from proxy.store.records import UNSENT_CALLBACKS

# Selected in this order by every statement that returns whole rows; the row mappers
# (``rows.row_to_request`` and the others) read them by position.
REQUEST_COLUMNS: Final = (
    "id, upstream, method, path, query, headers, body, received_at, status, attempts, "
    "next_attempt_at, updated_at, reason, lease_owner, lease_expires_at, retried_at, "
    "endpoint, ordering_key, expires_at, held_by, dedup_key, coalesce_key, reconcile_reads, "
    "own_faults, purged_at, key_id")
CALLBACK_COLUMNS: Final = (
    "id, request_id, upstream, url, payload, status, attempts, next_attempt_at, "
    "lease_expires_at, last_error, created_at, updated_at, key_id")
WINDOW_COLUMNS: Final = (
    "id, upstream, starts_at, ends_at, reason, created_by, created_at, cancelled_at")
JOB_COLUMNS: Final = (
    "id, actor, filter, expected, started_at, retried, skipped, stage, cursor, finished_at, "
    "error")

VALUES: Final[Mapping[str, str]] = {
    "REQUEST_COLUMNS": REQUEST_COLUMNS,
    "CALLBACK_COLUMNS": CALLBACK_COLUMNS,
    "WINDOW_COLUMNS": WINDOW_COLUMNS,
    "JOB_COLUMNS": JOB_COLUMNS,
    "BLOCKS_LATER": lifecycle.sql_in(lifecycle.BLOCKS_LATER),
    "STUCK": lifecycle.sql_in(lifecycle.STUCK),
    "QUEUED": lifecycle.sql_in(lifecycle.QUEUED),
    "LIVE": lifecycle.sql_in(lifecycle.LIVE),
    "OPEN": lifecycle.sql_in(lifecycle.OPEN),
    "FINAL": lifecycle.sql_in(lifecycle.FINAL),
    "UNSENT_CALLBACKS": "(" + ",".join(f"'{s.value}'" for s in sorted(UNSENT_CALLBACKS))
                        + ")",
}

QUERIES: Final[Mapping[str, str]] = render(load(__package__, "queries.sql"), VALUES)


def with_ids(sql: str, count: int) -> str:
    """``sql`` with ``{ids}`` as ``count`` placeholders (the caller passes the ids)."""
    return sql.replace("{ids}", ",".join("?" * count))


def with_where(sql: str, clauses: Sequence[str]) -> str:
    """``sql`` with ``{where}`` as the conjunction of ``clauses`` (none: every row)."""
    return sql.replace("{where}", " AND ".join(clauses) if clauses else "1=1")


def with_rows(sql: str, row: str, count: int) -> str:
    """``sql`` with ``{rows}`` as ``count`` copies of the VALUES row ``row`` (one
    multi-row statement)."""
    return sql.replace("{rows}", ",".join([row] * count))
