"""One delivery attempt: send, classify, decide the next state, persist both together."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import aiohttp

from proxy import calls
from proxy.bpjs.presets import Endpoint, resolve
from proxy.bpjs.results import readable
from proxy.bpjs.signature import CONS_ID_HEADER
from proxy.calls import Outcome, Transition, Verdict
from proxy.config import UpstreamConfig
from proxy.observe import NULL_OBSERVER, Observer
from proxy.policies.breaker import AsyncBreaker, Permit
from proxy.policies.classify import classify_error, classify_response
from proxy.store.base import AttemptRecord, Conflict, Store, StoredRequest, StoreError
from proxy.upstream import MAX_STORED_RESPONSE_BYTES, Reply, send, stored_header

log = logging.getLogger("tenang.relay")

INTERRUPTED = Outcome(
    Verdict.INTERRUPTED,
    "delivery interrupted (Tenang stopped mid-send); upstream may or may not have it",
    ambiguous=True,
)


def rule_for(upstream: UpstreamConfig, request: StoredRequest) -> Endpoint:
    return resolve(upstream.preset, upstream.overrides, request.method,
                   request.path[len(upstream.prefix):])


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
    observer: Observer = NULL_OBSERVER

    async def deliver(self, request: StoredRequest, permit: Permit) -> None:
        now = self.clock()
        too_late = calls.past_deadline(request.expires_at, now)
        if too_late is None and calls.is_expired(request.age_from, self.upstream.retry, now):
            reason = f"max age reached ({self.upstream.retry.max_age_s:g} s) before delivery"
            too_late = Transition(calls.Status.DEAD, reason)
        if too_late is not None:
            self.breaker.cancel(permit)
            await self.finish(request, None, too_late)
            return
        try:
            reply = await send(self.session, self.upstream, request, now)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            outcome = classify_error(exc)
            status, body, duration = None, None, self.clock() - now
        else:
            outcome, body = self._judge(request, reply)
            status, duration = reply.status, reply.duration_s
        self.breaker.record(permit, failure=outcome.trips_breaker)
        self.observer.attempt(self.upstream.name, outcome.verdict, duration)
        attempt = AttemptRecord(
            number=request.attempts + 1, started_at=now, duration_s=duration,
            verdict=outcome.verdict, http_status=status,
            error=None if outcome.verdict in (Verdict.SUCCESS, Verdict.DUPLICATE)
            else outcome.reason, response_body=body,
        )
        await self.finish(request, attempt, self.decide(request, outcome))

    def _judge(self, request: StoredRequest, reply: Reply) -> tuple[Outcome, bytes]:
        """Classify the answer and make its stored form readable (decrypted)."""
        rule = rule_for(self.upstream, request)
        outcome = classify_response(
            reply.status, reply.headers, reply.body, now=self.clock(),
            envelope_required=self.upstream.is_bpjs,
            retryable_messages=rule.retryable_messages,
        )
        cons_id = self.upstream.cons_id or stored_header(request, CONS_ID_HEADER) or ""
        result = readable(reply.body, encrypted=rule.encrypted, cons_id=cons_id,
                          secret=self.upstream.secret, timestamp=reply.timestamp)
        if result.decrypt_error is not None:
            # Loud, but never a reason to send again: the upstream answered, and for a
            # write a success means it is applied. A wrong secret needs a person.
            log.error("cannot decrypt the answer to %s (%s): %s; check cons_id and secret",
                      request.id, rule.name, result.decrypt_error,
                      extra={"request_id": request.id, "upstream": self.upstream.name})
            outcome = replace(outcome, reason=f"{outcome.reason}; answer NOT decrypted: "
                              f"{result.decrypt_error} (check cons_id/secret)")
        return outcome, result.body[:MAX_STORED_RESPONSE_BYTES]

    def decide(self, request: StoredRequest, outcome: Outcome) -> Transition:
        return calls.after_attempt(
            outcome, attempts_made=request.attempts + 1, age_from=request.age_from,
            policy=self.upstream.retry, now=self.clock(), rng=self.rng,
            expires_at=request.expires_at,
        )

    async def record_interrupted(self, request: StoredRequest) -> None:
        """A lease ran out (or shutdown cut a send short): record the ambiguous attempt."""
        now = self.clock()
        attempt = AttemptRecord(
            number=request.attempts + 1, started_at=now, duration_s=0.0,
            verdict=Verdict.INTERRUPTED, http_status=None, error=INTERRUPTED.reason,
            response_body=None,
        )
        self.observer.attempt(self.upstream.name, Verdict.INTERRUPTED, 0.0)
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
        self.observer.finished(self.upstream.name, request.id, transition.status,
                               transition.reason)
