"""Request rows of the PostgreSQL store: the columns read, a row as a StoredRequest (and
an attempt's as a StoredAttempt), new requests as the column arrays of one batched
insert."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from proxy import lifecycle
from proxy.lifecycle import Status, Verdict
from proxy.store import chain
from proxy.store.records import NewRequest, StoredAttempt, StoredRequest
from proxy.store.sealing import Keyring, body_aad, response_aad

_NAMES = ("id", "upstream", "method", "path", "query", "headers", "body", "received_at",
          "status", "attempts", "next_attempt_at", "updated_at", "reason", "lease_owner",
          "lease_expires_at", "retried_at", "endpoint", "ordering_key", "expires_at",
          "held_by", "dedup_key", "coalesce_key", "reconcile_reads", "own_faults", "purged_at",
          "seq", "key_id")


def columns(alias: str = "") -> str:
    """The columns ``row_to_request`` reads, qualified by ``alias`` when given."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + name for name in _NAMES)


def row_to_request(r: asyncpg.Record | Mapping[str, Any], keys: Keyring) -> StoredRequest:
    """A ``requests`` row selected as ``columns()`` (seq, the intake order, stays here),
    its body opened with ``keys``."""
    return StoredRequest(
        id=r["id"], upstream=r["upstream"], method=r["method"], path=r["path"],
        query=r["query"], headers=tuple((str(k), str(v)) for k, v in json.loads(r["headers"])),
        body=keys.open(bytes(r["body"]), r["key_id"], body_aad(r["id"])),
        received_at=r["received_at"], status=Status(r["status"]),
        attempts=r["attempts"], next_attempt_at=r["next_attempt_at"],
        updated_at=r["updated_at"], reason=r["reason"], lease_owner=r["lease_owner"],
        lease_expires_at=r["lease_expires_at"], retried_at=r["retried_at"],
        endpoint=r["endpoint"], ordering_key=r["ordering_key"], expires_at=r["expires_at"],
        held_by=r["held_by"], dedup_key=r["dedup_key"], coalesce_key=r["coalesce_key"],
        reconcile_reads=r["reconcile_reads"], own_faults=r["own_faults"],
        purged_at=r["purged_at"])


def row_to_attempt(r: asyncpg.Record, keys: Keyring) -> StoredAttempt:
    """An ``attempts`` row selected as queries.sql ``attempts`` selects it, its response
    body opened with ``keys``."""
    return StoredAttempt(request_id=r[0], number=r[1], started_at=r[2], duration_s=r[3],
                         verdict=Verdict(r[4]), http_status=r[5], error=r[6],
                         response_body=None if r[7] is None else keys.open(
                             bytes(r[7]), r[8], response_aad(r[0], r[1])))


def in_due_order(rows: Sequence[asyncpg.Record], keys: Keyring) -> list[StoredRequest]:
    """Oldest due first, ties in intake order (RETURNING keeps no order)."""
    ordered = sorted(rows, key=lambda r: (r["next_attempt_at"] or 0.0, r["seq"]))
    return [row_to_request(r, keys) for r in ordered]


_HEADERS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def insert_arrays(requests: Sequence[NewRequest], links: Sequence[chain.Link],
                  keys: Keyring) -> list[list[Any]]:
    """The 21 arrays of ``insert_requests`` for ``requests``, in their order (which is the
    order their seq is allotted in): 19 columns (bodies sealed under ``keys``, their key
    id), then the ids and leaves of their hash chain entries (``links``: one per request,
    none with the chain off)."""
    rows = [(r.id, r.upstream, r.method, r.path, r.query, _HEADERS.encode(r.headers),
             keys.seal(r.body, body_aad(r.id)),
             r.received_at, lifecycle.initial_status(r.lease_owner is not None).value,
             r.received_at, r.received_at, r.endpoint, r.ordering_key, r.expires_at,
             r.dedup_key, r.coalesce_key, r.lease_owner, r.lease_expires_at, keys.current)
            for r in requests]
    columns = [list(column) for column in zip(*rows, strict=True)]
    return [*columns, [link.ref for link in links], [link.leaf for link in links]]
