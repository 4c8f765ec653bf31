"""One delivery attempt: send, classify, decide the next state, persist both together."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from proxy import calls
from proxy.calls import Outcome, Transition, Verdict
from proxy.config import UpstreamConfig
from proxy.policies.breaker import AsyncBreaker, Permit
from proxy.policies.classify import classify_error, classify_response
from proxy.store.base import AttemptRecord, Conflict, Store, StoredRequest, StoreError
from proxy.upstream import MAX_STORED_RESPONSE_BYTES, send

log = logging.getLogger("tenang.relay")

INTERRUPTED = Outcome(
    Verdict.INTERRUPTED,
    "delivery interrupted (Tenang stopped mid-send); upstream may or may not have it",
)


@dataclass(slots=True)
class Deliverer:
    """Everything one upstream's attempts need; shared by all its in-flight deliveries."""

    upstream: UpstreamConfig
    store: Store
    session: aiohttp.ClientSession
    breaker: AsyncBreaker
    owner: str
    clock: Callable[[], float]
    rng: random.Random

    async def deliver(self, request: StoredRequest, permit: Permit) -> None:
        now = self.clock()
        if calls.is_expired(request.age_from, self.upstream.retry, now):
            self.breaker.cancel(permit)
            reason = f"max age reached ({self.upstream.retry.max_age_s:g} s) before delivery"
            await self.finish(request, None, Transition(calls.Status.DEAD, reason))
            return
        try:
            reply = await send(self.session, self.upstream, request)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            outcome = classify_error(exc)
            status, body, duration = None, None, self.clock() - now
        else:
            outcome = classify_response(
                reply.status, reply.headers, reply.body, now=self.clock(),
                envelope_required=self.upstream.preset != "generic",
            )
            status, duration = reply.status, reply.duration_s
            body = reply.body[:MAX_STORED_RESPONSE_BYTES]
        self.breaker.record(permit, failure=outcome.trips_breaker)
        attempt = AttemptRecord(
            number=request.attempts + 1, started_at=now, duration_s=duration,
            verdict=outcome.verdict, http_status=status,
            error=None if outcome.verdict in (Verdict.SUCCESS, Verdict.DUPLICATE)
            else outcome.reason, response_body=body,
        )
        await self.finish(request, attempt, self.decide(request, outcome))

    def decide(self, request: StoredRequest, outcome: Outcome) -> Transition:
        return calls.after_attempt(
            outcome, attempts_made=request.attempts + 1, age_from=request.age_from,
            policy=self.upstream.retry, now=self.clock(), rng=self.rng,
        )

    async def record_interrupted(self, request: StoredRequest) -> None:
        """A lease ran out (or shutdown cut a send short): record the ambiguous attempt."""
        now = self.clock()
        attempt = AttemptRecord(
            number=request.attempts + 1, started_at=now, duration_s=0.0,
            verdict=Verdict.INTERRUPTED, http_status=None, error=INTERRUPTED.reason,
            response_body=None,
        )
        await self.finish(request, attempt, self.decide(request, INTERRUPTED))

    async def finish(self, request: StoredRequest, attempt: AttemptRecord | None,
                     transition: Transition) -> None:
        try:
            await self.store.complete_attempt(
                request.id, self.owner, attempt, transition, self.clock())
        except Conflict:
            log.warning("lease lost before the result was stored", extra={
                "request_id": request.id, "upstream": self.upstream.name})
            return
        except StoreError as exc:
            # The lease will expire and the request is retried as an interrupted delivery.
            log.error("cannot record delivery result: %s", exc, extra={
                "request_id": request.id, "upstream": self.upstream.name})
            return
        log.info("request %s -> %s (%s)", request.id, transition.status.value,
                 transition.reason, extra={"request_id": request.id,
                                           "upstream": self.upstream.name})
