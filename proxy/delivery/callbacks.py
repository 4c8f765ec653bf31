"""Outcome callbacks to the SIMRS: what is sent and when it is retried.

Pure functions; ``proxy.delivery.callback_sender`` does the sending. A callback is queued in the
same store transaction as the final state it reports (``callback_for`` builds it for the
caller of ``Store.complete_attempt`` / ``Store.transition``), so a crash can lose neither.

The sender signs each POST with the upstream's ``callback_secret`` (``proxy.signing``:
``X-Tenang-Signature``, the same as webhook notifications); receivers verify it and
deduplicate on ``X-Tenang-Callback-Id``: delivery is at least once.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from proxy.bpjs import envelope as bpjs_envelope
from proxy.config import CallbacksConfig, UpstreamConfig
from proxy.lifecycle import FINAL, Transition
from proxy.policies.retry import capped_exponential_s
from proxy.shapes import iso_utc
from proxy.store.records import NewCallback, StoredRequest

REQUEST_ID_HEADER = "X-Tenang-Request-Id"
CALLBACK_ID_HEADER = "X-Tenang-Callback-Id"


class CallbackPayload(TypedDict):
    id: str
    upstream: str
    endpoint: str | None
    method: str
    path: str
    status: str
    reason: str
    received_at: str
    finished_at: str
    attempts: int
    result: dict[str, Any] | None  # BPJS's envelope as stored (decrypted), or None


def bpjs_result(body: bytes | None) -> dict[str, Any] | None:
    """The stored answer as a JSON object when it is a BPJS envelope, else None (HTML
    error pages, empty bodies and non-BPJS answers are not results to hand on)."""
    env = None if body is None else bpjs_envelope.parse(body)
    return None if env is None else env.doc


def callback_for(upstream: UpstreamConfig, request: StoredRequest, transition: Transition,
                 result: bytes | None, now: float, *,
                 attempts: int | None = None) -> NewCallback | None:
    """The callback to queue with ``transition`` of ``request``, or None when the
    upstream has no ``callback_url`` or the new status is not final.

    ``result`` is the stored (plain) answer of the attempt that ended it, if any;
    ``attempts`` the attempt count after the transition (default: ``request.attempts``,
    right when the transition recorded no attempt).
    """
    if not upstream.callback_url or transition.status not in FINAL:
        return None
    payload: CallbackPayload = {
        "id": request.id, "upstream": request.upstream, "endpoint": request.endpoint,
        "method": request.method, "path": request.path,
        "status": transition.status.value, "reason": transition.reason,
        "received_at": iso_utc(request.received_at), "finished_at": iso_utc(now),
        "attempts": request.attempts if attempts is None else attempts,
        "result": bpjs_result(result),
    }
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return NewCallback(upstream.callback_url, body)


def retry_delay_s(attempt: int, config: CallbacksConfig) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential
    from ``initial_delay_s``, capped at ``max_delay_s``. No jitter: callbacks go to one
    receiver per hospital, not to a shared service a herd could stampede."""
    return capped_exponential_s(attempt, config.initial_delay_s, config.max_delay_s)


def next_attempt_at(attempt: int, config: CallbacksConfig, now: float) -> float | None:
    """When to try again after failed attempt ``attempt``; None: give up (dead)."""
    if attempt >= config.max_attempts:
        return None
    return now + retry_delay_s(attempt, config)
