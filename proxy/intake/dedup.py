"""Duplicate submissions: an ``Idempotency-Key`` header, or the route's natural key
(Antrean: kodebooking + taskid), finds the request already accepted for the same thing,
so a SIMRS that resends on every non-200 (Khanza does, every 10 minutes) does not
multiply deliveries.

The store keeps dedup keys unique and decides in one step whether a resubmission
matches the request holding its key (``lifecycle.still_matches``) or is a new request
(``Intake.enqueue_or_match``).
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from proxy.bpjs.keys import Body, key_of
from proxy.bpjs.presets import Endpoint
from proxy.config import UpstreamConfig
from proxy.intake.headers import header_text
from proxy.lifecycle import EXPLICIT_KEY

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Longer scoped keys are stored as their SHA-256: cutting them made distinct keys that
# share a long prefix collide, and the unique index need not hold kilobytes.
MAX_KEY_CHARS = 200


def dedup_key(upstream: UpstreamConfig, rule: Endpoint, request: web.Request,
              path_below_prefix: str, body: Body) -> str | None:
    explicit = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if explicit:
        scoped = idempotency_scope(request.method, path_below_prefix, explicit)
        return f"{upstream.name}:{EXPLICIT_KEY}:{scoped}"
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
