"""The JSON documents the admin API and the results lookup answer with, as TypedDicts:
the README's API tables promise these keys, and mypy checks every place that builds one
(a renamed or forgotten key is a type error, not a silent change for API clients)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict


def iso_utc(ts: float) -> str:
    """The one time format of every JSON document Tenang writes (these, and the SIMRS
    callbacks): ISO 8601 in UTC with milliseconds, e.g. ``2025-03-01T01:02:03.456Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class RequestBrief(TypedDict):
    """One request in ``GET /api/v1/requests`` (and the start of its detail)."""
    id: str
    upstream: str
    method: str
    path: str
    query: str
    status: str
    reason: str | None
    attempt_count: int
    received_at: str | None
    next_attempt_at: str | None
    updated_at: str | None
    retried_at: str | None
    endpoint: str | None
    ordering_key: str | None
    held_by: str | None
    expires_at: str | None


class AttemptJson(TypedDict):
    number: int
    started_at: str | None
    duration_ms: float
    outcome: str
    http_status: int | None
    error: str | None
    response: str | None


class RequestDetail(RequestBrief):
    """``GET /api/v1/requests/{id}`` and the answer of an operation on one request."""
    headers: list[tuple[str, str]]
    body: str | None
    attempts: list[AttemptJson]
    last_response: str | None


class BreakerJson(TypedDict):
    state: str
    opened_at: str | None
    probe_at: str | None


class UpstreamSummary(TypedDict):
    counts: dict[str, int]
    breaker: BreakerJson
    oldest_pending_age_s: float | None
    last_attempt_at: str | None
    last_outcome: str | None
    sep_not_succeeded: int


class Summary(TypedDict):
    """``GET /api/v1/summary``."""
    upstreams: dict[str, UpstreamSummary]
    generated_at: str | None


class TenangState(TypedDict):
    """The results lookup's ``tenang`` key (no headers, no body)."""
    id: str
    upstream: str
    endpoint: str | None
    status: str
    reason: str | None
    attempts: int
    received_at: str
    updated_at: str
