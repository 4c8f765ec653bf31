"""Duplicate submissions: an ``Idempotency-Key`` header, or the route's natural key
(Antrean: kodebooking + taskid), finds the request already accepted for the same thing,
so a SIMRS that resends on every non-200 (Khanza does, every 10 minutes) does not
multiply deliveries.

The store keeps dedup keys unique; a resubmission is found when its insert collides,
so the usual first submission costs no extra read.
"""

from __future__ import annotations

from aiohttp import web

from proxy.bpjs.keys import Body, key_of
from proxy.bpjs.presets import Endpoint
from proxy.calls import Status
from proxy.config import UpstreamConfig
from proxy.store.base import StoredRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 200
# A natural-key resubmission after one of these is a person trying again (with data
# fixed, say): it is a new request. An Idempotency-Key always means the same request.
_RETRIED_BY_PEOPLE = frozenset({Status.FAILED, Status.DEAD})


def dedup_key(upstream: UpstreamConfig, rule: Endpoint, request: web.Request,
              body: Body) -> str | None:
    explicit = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if explicit:
        return f"{upstream.name}:idem:{explicit[:MAX_KEY_CHARS]}"
    natural = key_of(body, rule.dedup_key)
    return None if natural is None else f"{upstream.name}:{rule.name}:{natural}"


def still_matches(original: StoredRequest, window_s: float, now: float) -> bool:
    """Whether a resubmission should get ``original`` back instead of a new delivery."""
    if original.status is Status.CANCELLED or original.received_at < now - window_s:
        return False
    explicit = (original.dedup_key or "").startswith(f"{original.upstream}:idem:")
    return explicit or original.status not in _RETRIED_BY_PEOPLE
