"""Putting stored requests into a state without a relay (the ``ui`` fixture has none)."""

from __future__ import annotations

import time

from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.records import AttemptRecord
from tests.store_support import hand_back


async def settle(store: Backend, request_id: str, status: Status, upstream: str = "antrean",
                 response: bytes = b'{"metadata":{"code":201,"message":"Data tidak valid"}}',
                 verdict: Verdict | None = None) -> None:
    """Claim ``request_id`` and record one attempt (``verdict``, answering ``response``)
    that left it ``status``; any other request claimed on the way goes back to pending
    untouched."""
    now = time.time()
    claimed = await store.queue.claim_due(upstream, now + 3600, 1000, "test", now + 60)
    assert request_id in [r.id for r in claimed]
    for r in claimed:
        if r.id != request_id:
            await hand_back(store, r.id, "test", now)
    if verdict is None:
        verdict = Verdict.PERMANENT if status is Status.FAILED else Verdict.TRANSIENT
    http_status = {Status.FAILED: 201, Status.SUCCEEDED: 200}.get(status, 503)
    attempt = AttemptRecord(1, now, 0.25, verdict, http_status,
                            None if http_status != 503 else "upstream answered 503",
                            response)
    await store.queue.complete_attempt(request_id, "test", attempt,
                                       Transition(status, f"test: {status.value}"), now)
