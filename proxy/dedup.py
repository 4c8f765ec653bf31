"""Duplicate submissions: an ``Idempotency-Key`` header, or the route's natural key
(Antrean: kodebooking + taskid), finds the request already accepted for the same thing,
so a SIMRS that resends on every non-200 (Khanza does, every 10 minutes) does not
multiply deliveries.

The store keeps dedup keys unique; a resubmission is found when its insert collides,
so the usual first submission costs no extra read.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from proxy.bpjs.keys import Body, key_of
from proxy.bpjs.presets import Endpoint
from proxy.calls import FINAL, Status
from proxy.config import UpstreamConfig
from proxy.headers import header_text
from proxy.store.base import StoredRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Longer scoped keys are stored as their SHA-256: cutting them made distinct keys that
# share a long prefix collide, and the unique index need not hold kilobytes.
MAX_KEY_CHARS = 200
# A natural-key resubmission after one of these is a person trying again (with data
# fixed, say): it is a new request. An Idempotency-Key always means the same request.
_RETRIED_BY_PEOPLE = frozenset({Status.FAILED, Status.DEAD})


def dedup_key(upstream: UpstreamConfig, rule: Endpoint, request: web.Request,
              path_below_prefix: str, body: Body) -> str | None:
    explicit = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if explicit:
        scoped = idempotency_scope(request.method, path_below_prefix, explicit)
        return f"{upstream.name}:idem:{scoped}"
    natural = key_of(body, rule.dedup_key)
    return None if natural is None else f"{upstream.name}:{rule.name}:{natural}"


def idempotency_scope(method: str, path_below_prefix: str, key: str) -> str:
    """An Idempotency-Key names one call: a SIMRS reusing a key for another method or
    path (``antrean/add``, then ``antrean/batal``) means another request, which must not
    be answered "already accepted" and dropped."""
    scoped = f"{method.upper()} {path_below_prefix.lower()} {header_text(key)}"
    if len(scoped) <= MAX_KEY_CHARS:
        return scoped
    return "sha256:" + hashlib.sha256(scoped.encode("utf-8")).hexdigest()


def still_matches(original: StoredRequest, window_s: float, now: float) -> bool:
    """Whether a resubmission should get ``original`` back instead of a new delivery.

    An original not yet final (pending, in flight, held) always does, however old: it
    will still be delivered, and a SIMRS resending every 10 minutes while BPJS is down
    for a day would otherwise queue a second copy. ``window_s`` only bounds how long a
    settled original keeps answering, counted from when it settled.
    """
    if original.status not in FINAL:
        return True
    if original.status is Status.CANCELLED or original.updated_at < now - window_s:
        return False
    explicit = (original.dedup_key or "").startswith(f"{original.upstream}:idem:")
    return explicit or original.status not in _RETRIED_BY_PEOPLE
