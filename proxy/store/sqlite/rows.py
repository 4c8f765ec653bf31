"""How records become SQLite rows and back, and the writes every SQLite role object makes
inside its own transactions (a request and its counts, a callback)."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

from proxy import lifecycle
from proxy.lifecycle import Status, Verdict
from proxy.store.records import (
    AttemptRecord,
    BulkJobRecord,
    CallbackStatus,
    Headers,
    MaintenanceWindow,
    NewCallback,
    NewRequest,
    StoredAttempt,
    StoredCallback,
    StoredRequest,
)
from proxy.store.sealing import Keyring, body_aad, payload_aad, response_aad
from proxy.store.sqlite.queries import QUERIES, with_rows

_UPSTREAM, _PATH, _STATUS, _ENDPOINT = 1, 3, 8, 11  # positions in an insert_request row


def count_inserted(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Add ``rows`` (just inserted with ``insert_request``) to request_counts; returns
    the database's ``PRAGMA data_version`` as the statement read it (the writer's
    ``AfterInsert``). Every insert into ``requests`` must be followed by this, in its
    transaction."""
    groups = Counter((r[_UPSTREAM], r[_STATUS], r[_ENDPOINT], r[_PATH]) for r in rows)
    params = [v for key, n in groups.items() for v in (*key, n)]
    returned = conn.execute(_counts_sql(len(groups)), params).fetchall()
    return int(returned[0][0])


# One group's counts: upstream, status, whether SEP (the trigger's test, so both agree on
# every row), how many.
_COUNT_ROW = "(?, ?, IFNULL(? LIKE 'vclaim.sep%' OR ? LIKE '%/sep/%', 0), ?)"


@functools.lru_cache(maxsize=16)
def _counts_sql(groups: int) -> str:
    return with_rows(QUERIES["count_requests_inserted"], _COUNT_ROW, groups)


# Built once: json.dumps with non-default options constructs an encoder per call.
_HEADERS_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


# A SIMRS sends the same header set (its X-timestamp changes once a second at most) with
# thousands of requests: encoding it once per distinct set saved ~3 us per insert.
_HEADERS_SEEN: dict[Headers, str] = {}
_HEADERS_REMEMBERED = 256


def _headers_json(headers: Headers) -> str:
    text = _HEADERS_SEEN.get(headers)
    if text is None:
        if len(_HEADERS_SEEN) >= _HEADERS_REMEMBERED:
            _HEADERS_SEEN.clear()
        text = _HEADERS_SEEN[headers] = _HEADERS_ENCODER.encode(headers)
    return text


def insert_row(r: NewRequest, keys: Keyring) -> tuple[Any, ...]:
    """The parameters of ``insert_request`` for ``r``, its body sealed under ``keys``."""
    return (
        r.id, r.upstream, r.method, r.path, r.query, _headers_json(r.headers),
        keys.seal(r.body, body_aad(r.id)),
        r.received_at, lifecycle.initial_status(r.lease_owner is not None).value,
        r.received_at, r.received_at, r.endpoint, r.ordering_key, r.expires_at,
        r.dedup_key, r.coalesce_key, r.lease_owner, r.lease_expires_at, keys.current,
    )


def row_to_request(r: sqlite3.Row | tuple[Any, ...], keys: Keyring) -> StoredRequest:
    """A ``requests`` row selected as ``REQUEST_COLUMNS``, its body opened with ``keys``."""
    headers = tuple((str(k), str(v)) for k, v in json.loads(r[5]))
    return StoredRequest(
        id=r[0], upstream=r[1], method=r[2], path=r[3], query=r[4], headers=headers,
        body=keys.open(bytes(r[6]), r[25], body_aad(r[0])), received_at=r[7],
        status=Status(r[8]), attempts=r[9],
        next_attempt_at=r[10], updated_at=r[11], reason=r[12], lease_owner=r[13],
        lease_expires_at=r[14], retried_at=r[15], endpoint=r[16], ordering_key=r[17],
        expires_at=r[18], held_by=r[19], dedup_key=r[20], coalesce_key=r[21],
        reconcile_reads=r[22], own_faults=r[23], purged_at=r[24],
    )


def row_to_attempt(r: sqlite3.Row | tuple[Any, ...], keys: Keyring) -> StoredAttempt:
    """An ``attempts`` row selected as in ``request_attempts``."""
    return StoredAttempt(request_id=r[0], number=r[1], started_at=r[2], duration_s=r[3],
                         verdict=Verdict(r[4]), http_status=r[5], error=r[6],
                         response_body=None if r[7] is None else keys.open(
                             bytes(r[7]), r[8], response_aad(r[0], r[1])))


def attempt_row(request_id: str, a: AttemptRecord, keys: Keyring) -> tuple[Any, ...]:
    """The parameters of ``insert_attempt``, the response body sealed under ``keys``."""
    body = None if a.response_body is None else keys.seal(
        a.response_body, response_aad(request_id, a.number))
    return (a.number, a.started_at, a.duration_s, a.verdict.value, a.http_status, a.error,
            body, None if body is None else keys.current, request_id)


def row_to_callback(r: sqlite3.Row | tuple[Any, ...], keys: Keyring) -> StoredCallback:
    """A ``callbacks`` row selected as ``CALLBACK_COLUMNS``."""
    return StoredCallback(
        id=r[0], request_id=r[1], upstream=r[2], url=r[3],
        payload=keys.open(bytes(r[4]), r[12], payload_aad(r[1])),
        status=CallbackStatus(r[5]), attempts=r[6], next_attempt_at=r[7],
        lease_expires_at=r[8], last_error=r[9], created_at=r[10], updated_at=r[11])


def row_to_window(r: sqlite3.Row | tuple[Any, ...]) -> MaintenanceWindow:
    """A ``maintenance_windows`` row selected as ``WINDOW_COLUMNS``."""
    return MaintenanceWindow(id=r[0], upstream=r[1], starts_at=r[2], ends_at=r[3],
                             reason=r[4] or "", created_by=r[5], created_at=r[6],
                             cancelled_at=r[7])


def row_to_job(r: sqlite3.Row | tuple[Any, ...]) -> BulkJobRecord:
    """A ``bulk_jobs`` row selected as ``JOB_COLUMNS``."""
    return BulkJobRecord(*r)


def queue_callback(c: sqlite3.Connection, request_id: str, callback: NewCallback,
                   now: float, keys: Keyring) -> None:
    """Queue ``callback`` for ``request_id`` in the caller's transaction (the outbox), its
    payload (it carries the result) sealed under ``keys``."""
    c.execute(QUERIES["queue_callback"], (
        callback.url, keys.seal(callback.payload, payload_aad(request_id)), keys.current,
        now, now, now, request_id))
