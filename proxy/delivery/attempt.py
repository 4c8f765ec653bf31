"""One delivery attempt: send, classify, decide the next state, persist both together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import aiohttp

from proxy import lifecycle
from proxy.bpjs.presets import Endpoint, resolve
from proxy.bpjs.results import readable
from proxy.bpjs.signature import USER_KEY_HEADER
from proxy.config import RelayConfig, UpstreamConfig
from proxy.delivery.callbacks import callback_for
from proxy.delivery.final_write import to_the_end
from proxy.delivery.live import NOT_RECORDED, LiveAttempt, LiveResult
from proxy.delivery.outcome_log import DeliveryLog
from proxy.delivery.reconcile import EXISTING_SEP, Finding, Reconciler
from proxy.delivery.upstream import (
    MAX_STORED_RESPONSE_BYTES,
    Reply,
    send,
    stored_cons_id,
    stored_header,
)
from proxy.lifecycle import Outcome, Settlement, Transition, Verdict
from proxy.observe.observer import NULL_OBSERVER, Observer
from proxy.policies.breaker import AsyncBreaker, Grant, Permit
from proxy.policies.classify import attribute, classify_error, classify_response, envelope
from proxy.store.errors import Conflict, StoreError, StoreFull, StoreUnavailable
from proxy.store.protocols import RequestQueue
from proxy.store.records import AttemptRecord, StoredRequest

log = logging.getLogger("tenang.relay")

INTERRUPTED = Outcome(
    Verdict.INTERRUPTED,
    "delivery interrupted (Tenang stopped mid-send); upstream may or may not have it",
    ambiguous=True,
)


# Recording a known result is retried while the store is locked or full.
FINISH_RETRY_FIRST_S = 0.05
FINISH_RETRY_MAX_S = 5.0
MAX_REMEMBERED_RULES = 4096


def _names_existing(outcome: Outcome) -> bool:
    """A refusal that names an existing record (VClaim's same-day SEP message)."""
    return outcome.verdict is Verdict.PERMANENT and bool(EXISTING_SEP.search(outcome.reason))


def rule_for(upstream: UpstreamConfig, request: StoredRequest) -> Endpoint:
    return resolve(upstream.preset, upstream.overrides, request.method,
                   upstream.below_prefix(request.path))


@dataclass(slots=True)
class Deliverer:
    """Everything one upstream's attempts need; shared by all its in-flight deliveries."""

    upstream: UpstreamConfig
    store: RequestQueue
    session: aiohttp.ClientSession
    breaker: AsyncBreaker
    owner: str
    clock: Callable[[], float]
    rng: random.Random
    observer: Observer = NULL_OBSERVER
    # When the upstream last answered an attempt without refusing its credentials:
    # evidence that a request refused again is refused for its own reason.
    accepted_at: float | None = None
    # Routine outcomes summed up every few seconds, not a line each (proxy/delivery/outcome_log.py).
    outcomes: DeliveryLog | None = None
    # A lease lasts the upstream's timeout plus this (config relay.lease_margin_s).
    lease_margin_s: float = RelayConfig().lease_margin_s
    # Endpoint rules per (method, path): a drain sends thousands of requests to a few paths.
    rules: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    # Set when a delivery is cancelled while its result is being stored (Tenang stops):
    # the write still runs to its end, but a store that stays locked is not waited for.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.outcomes is None:
            self.outcomes = DeliveryLog(self.upstream.name)

    @property
    def lease_s(self) -> float:
        return self.upstream.timeout_s + self.lease_margin_s

    def rule(self, request: StoredRequest) -> Endpoint:
        key = (request.method, request.path)
        found = self.rules.get(key)
        if found is None:
            if len(self.rules) >= MAX_REMEMBERED_RULES:
                self.rules.clear()  # reads with ids in the path must not grow it forever
            found = self.rules[key] = rule_for(self.upstream, request)
        return found

    async def deliver(self, request: StoredRequest, permit: Permit,
                      live: LiveAttempt | None = None) -> None:
        """Send ``request`` (claimed, or leased for a live attempt) under ``permit`` and
        record the result; a live attempt hears it once it is stored."""
        grant = Grant(self.breaker, permit)
        result = NOT_RECORDED
        try:
            result = await self._deliver(request, grant, live)
        finally:
            # Whatever ended the attempt (a store error before sending, a bug, shutdown)
            # and the send's result did not settle: the permit may be the half-open
            # breaker's only probe, and lost it would stop every send to this upstream.
            grant.give_back()
            if live is not None:
                live.settle(result)

    async def _deliver(self, request: StoredRequest, grant: Grant,
                       live: LiveAttempt | None) -> LiveResult:
        now = self.clock()
        rule = self.rule(request)
        try:
            stop = await self._before_sending(request, rule, now)
        except (StoreUnavailable, StoreFull) as exc:
            grant.give_back()
            recorded = await self._not_sent(request, exc)
            return LiveResult(None, lifecycle.Status.PENDING if recorded else None)
        if stop is not None:
            grant.give_back()  # now, not after the write: that may wait for the store
            await self.finish(request, None, stop)
            return LiveResult(None, stop.status)
        if request.reconcile_reads is not None:
            return await self._read_back(request, rule, grant, now)
        reply: Reply | None = None
        try:
            reply = await send(self.session, self.upstream, request, now,
                               None if live is None else live.headers)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            outcome = classify_error(exc)
            status, body, duration = None, None, self.clock() - now
        else:
            outcome, body = self._judge(request, rule, reply)
            outcome = self._attribute(request, outcome, reply)
            status, duration = reply.status, reply.duration_s
        grant.record(failure=outcome.trips_breaker)
        self.observer.attempt(self.upstream.name, outcome.verdict, duration)
        transition, body, outcome = await self._conclude(request, rule, outcome, body)
        attempt = AttemptRecord(
            number=request.attempts + 1, started_at=now, duration_s=duration,
            verdict=outcome.verdict, http_status=status,
            error=None if outcome.verdict in (Verdict.SUCCESS, Verdict.DUPLICATE)
            else outcome.reason, response_body=body,
        )
        recorded = await self.finish(request, attempt, transition)
        return LiveResult(reply, transition.status if recorded else None)

    async def _before_sending(self, request: StoredRequest, rule: Endpoint,
                              now: float) -> Transition | None:
        """Why this request must not be sent now: its day is over, it is too old, or a
        newer update for the same thing supersedes it."""
        if request.reconcile_reads is not None:
            return lifecycle.too_late_to_read(request.send_by, request.age_from,
                                          self.upstream.retry, now, request.reconcile_reads)
        too_late = lifecycle.past_deadline(request.send_by, now, needs_person=bool(rule.reconcile))
        if too_late is not None:
            return too_late
        if lifecycle.is_expired(request.age_from, self.upstream.retry, now):
            reason = f"max age reached ({self.upstream.retry.max_age_s:g} s) before delivery"
            return Transition(lifecycle.Status.DEAD, reason)
        if request.coalesce_key is not None:
            return await self._supersede(request.coalesce_key, request.id, now)
        return None

    async def _supersede(self, coalesce_key: str, request_id: str,
                         now: float) -> Transition | None:
        """Cancel the older pending updates of the same thing; the transition for
        ``request_id`` if a newer one supersedes it too. Their callbacks are built here,
        before the store's transaction, which only writes them."""
        live = await self.store.live_coalesced(coalesce_key)
        if not live:
            return None
        newest = live[-1].id
        transition = lifecycle.superseded_by(newest)
        # "Older" is the store's order (intake order: PostgreSQL's sequence), not the
        # ids': instances mint ids from their own clocks, which may disagree.
        older = [r for r in live[:-1] if r.status is lifecycle.Status.PENDING]
        if older:
            built = {r.id: callback_for(self.upstream, r, transition, None, now)
                     for r in older}
            cancelled = await self.store.supersede(
                [r.id for r in older], newest, now,
                {i: cb for i, cb in built.items() if cb is not None})
            for cancelled_id in cancelled:  # final: out of the queue count and the log
                self.observer.finished(self.upstream.name, cancelled_id,
                                       transition.status, transition.reason)
        return None if newest == request_id else transition

    def _judge(self, request: StoredRequest, rule: Endpoint,
               reply: Reply) -> tuple[Outcome, bytes]:
        """Classify the answer and make its stored form readable (decrypted)."""
        outcome = classify_response(
            reply.status, reply.headers, reply.body, now=self.clock(),
            envelope_required=self.upstream.is_bpjs,
            retryable_messages=rule.retryable_messages,
        )
        cons_id = stored_cons_id(self.upstream, request)
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

    async def _conclude(self, request: StoredRequest, rule: Endpoint, outcome: Outcome,
                        body: bytes | None) -> tuple[Transition, bytes | None, Outcome]:
        """The next state, the body to store and the outcome as recorded; on a
        non-idempotent route an unanswered send, or a refusal naming an existing
        record, is first settled by asking BPJS (what it said joins the attempt)."""
        if not rule.reconcile or not (outcome.ambiguous or _names_existing(outcome)):
            transition = self.decide(request, outcome, deadline_holds=bool(rule.reconcile))
            return transition, body, outcome
        finding = await self.reconciler.settle(rule.reconcile, request)
        self._observe_read(finding)
        noted = replace(outcome, reason=f"{outcome.reason}; reconciliation: {finding.detail}")
        if _names_existing(outcome) and finding.settlement is Settlement.ABSENT:
            return self.decide(request, noted), body, noted  # a real refusal: failed
        transition = lifecycle.after_reconciliation(
            finding.settlement, finding.detail, outcome, attempts_made=request.attempts + 1,
            age_from=request.age_from, policy=self.upstream.retry, now=self.clock(),
            rng=self.rng, expires_at=request.send_by)
        return transition, finding.result or body, noted

    def _attribute(self, request: StoredRequest, outcome: Outcome, reply: Reply) -> Outcome:
        """Tell a refusal of this request's own credentials from an upstream-wide one."""
        if not outcome.auth_refused:
            if outcome.verdict in (Verdict.SUCCESS, Verdict.DUPLICATE, Verdict.PERMANENT):
                self.accepted_at = self.clock()
            return outcome
        # Due again only after its last refusal: an acceptance since is another request's.
        since = self.accepted_at is not None and \
            self.accepted_at >= (request.next_attempt_at or request.received_at)
        said = envelope(reply.body) or ("", "")
        return attribute(
            outcome, said[1], own_user_key=stored_header(request, USER_KEY_HEADER) is not None
            or not self.upstream.user_key, refused_before=request.own_faults > 0,
            accepted_since=since)

    def _observe_read(self, finding: Finding) -> None:
        if finding.http_status is not None or finding.settlement is Settlement.UNREACHABLE:
            self.observer.reconciled(self.upstream.name, finding.settlement.value)

    @property
    def reconciler(self) -> Reconciler:
        return Reconciler(self.upstream, self.session, self.clock)

    async def _read_back(self, request: StoredRequest, rule: Endpoint, grant: Grant,
                         now: float) -> LiveResult:
        """A claim of a request whose last send got no answer: read BPJS's history under
        the breaker's permit, like a send, and never send blindly. What the read finds
        joins the reason; a find is recorded as an attempt that found it applied."""
        finding = await self.reconciler.settle(rule.reconcile, request)
        self._observe_read(finding)
        grant.record(failure=finding.trips_breaker)
        unanswered = Outcome(Verdict.INTERRUPTED, f"attempt {request.attempts} got no answer",
                             ambiguous=True)
        reading = lifecycle.Reading(request.reconcile_reads or 0, just_sent=False,
                                retry_after_s=finding.retry_after_s)
        transition = lifecycle.after_reconciliation(
            finding.settlement, finding.detail, unanswered, attempts_made=request.attempts,
            age_from=request.age_from, policy=self.upstream.retry, now=self.clock(),
            rng=self.rng, expires_at=request.send_by, reading=reading)
        attempt = None
        if finding.settlement is Settlement.FOUND:
            attempt = AttemptRecord(
                number=request.attempts + 1, started_at=now, duration_s=self.clock() - now,
                verdict=Verdict.DUPLICATE, http_status=finding.http_status, error=None,
                response_body=finding.result)
        recorded = await self.finish(request, attempt, transition)
        return LiveResult(None, transition.status if recorded else None)

    def decide(self, request: StoredRequest, outcome: Outcome, *,
               deadline_holds: bool = False) -> Transition:
        return lifecycle.after_attempt(
            outcome, attempts_made=request.attempts + 1, age_from=request.age_from,
            policy=self.upstream.retry, now=self.clock(), rng=self.rng,
            expires_at=request.send_by, deadline_holds=deadline_holds,
            own_faults_before=request.own_faults,
        )

    async def record_interrupted(self, request: StoredRequest) -> None:
        """A lease ran out (or shutdown cut a send short): record the ambiguous attempt.

        Nothing is read from the upstream here (this runs in the lane's housekeeping,
        before any claim): a request whose send needs settling by a read goes back to
        pending in its reading phase, and the read is claimed work like a send."""
        now = self.clock()
        if request.reconcile_reads is not None:
            # Cut short while reading: nothing was sent, so no attempt; read again.
            await self.finish(request, None, Transition(
                lifecycle.Status.PENDING, "reconciliation read interrupted (Tenang stopped "
                "mid-read); reading again before any resend", next_attempt_at=now,
                reconcile_reads=request.reconcile_reads))
            return
        self.observer.attempt(self.upstream.name, Verdict.INTERRUPTED, 0.0)
        rule = self.rule(request)
        if rule.reconcile and self.reconciler.without_reading(rule.reconcile, request) is None:
            transition = Transition(
                lifecycle.Status.PENDING, f"{INTERRUPTED.reason}; reading BPJS's history before "
                "any resend", next_attempt_at=now, reconcile_reads=0)
            body, outcome = None, INTERRUPTED
        else:
            transition, body, outcome = await self._conclude(request, rule, INTERRUPTED, None)
        attempt = AttemptRecord(
            number=request.attempts + 1, started_at=now, duration_s=0.0,
            verdict=Verdict.INTERRUPTED, http_status=None, error=outcome.reason,
            response_body=body,
        )
        await self.finish(request, attempt, transition)

    async def _not_sent(self, request: StoredRequest, exc: StoreError) -> bool:
        """The store failed before anything was sent: hand the claim back, due a little
        later. Left to its lease, the take-over would record an unanswered send (one that
        may have been applied) that never happened. False: the lease is left to expire."""
        transition = Transition(
            lifecycle.Status.PENDING, f"not sent: the store failed before sending ({exc}); "
            "trying again", next_attempt_at=self.clock() + FINISH_RETRY_MAX_S,
            reconcile_reads=request.reconcile_reads, own_faults=request.own_faults)
        try:
            await to_the_end(self.store.complete_attempt(request.id, self.owner, None,
                                                         transition, self.clock()))
        except StoreError as again:
            log.error("cannot hand back %s after a store error: %s", request.id, again,
                      extra={"request_id": request.id, "upstream": self.upstream.name})
            return False
        return True

    async def _backoff(self, delay: float) -> None:
        """Wait ``delay`` between store retries, or less once Tenang is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.stopping.wait()

    async def _renew(self, request: StoredRequest) -> None:
        """Keep the lease of a request whose result waits for the store; if the store is
        still unavailable, the next round tries again (the lease has its margin)."""
        with contextlib.suppress(StoreError):
            await self.store.renew_leases(self.owner, [request.id],
                                          self.clock() + self.lease_s)

    async def finish(self, request: StoredRequest, attempt: AttemptRecord | None,
                     transition: Transition) -> bool:
        """Record the attempt and transition; False when they could not be recorded.

        The result is known by now (an answer, a reconciliation's finding): a
        cancellation meanwhile (Tenang stopping) waits for the write instead of cutting
        it short, which would leave the request in flight, to be taken for an
        interrupted send and sent again after the restart."""
        return await to_the_end(self._finish(request, attempt, transition),
                                on_cancel=self.stopping.set)

    async def _finish(self, request: StoredRequest, attempt: AttemptRecord | None,
                      transition: Transition) -> bool:
        now = self.clock()
        callback = callback_for(self.upstream, request, transition,
                                attempt.response_body if attempt else None, now,
                                attempts=attempt.number if attempt else request.attempts)
        delay = FINISH_RETRY_FIRST_S
        while True:
            try:
                await self.store.complete_attempt(request.id, self.owner, attempt,
                                                  transition, now, callback=callback)
                break
            except Conflict:
                log.warning("lease lost before the result was stored", extra={
                    "request_id": request.id, "upstream": self.upstream.name})
                return False
            except (StoreUnavailable, StoreFull) as exc:
                if self.stopping.is_set():
                    # Tenang is stopping and would wait for the store forever: the lease
                    # expires and the request is settled as interrupted after the restart.
                    log.error("cannot record delivery result while stopping: %s", exc,
                              extra={"request_id": request.id,
                                     "upstream": self.upstream.name})
                    return False
                # The answer is known: dropping it would let the lease run out and the
                # request be sent again as "interrupted". Keep it and keep trying; this
                # task stays the request's delivery and renews its lease each time round.
                log.error("cannot record delivery result, retrying in %.2g s: %s", delay,
                          exc, extra={"request_id": request.id,
                                      "upstream": self.upstream.name})
                await self._backoff(delay)
                delay = min(delay * 2, FINISH_RETRY_MAX_S)
                await self._renew(request)
            except StoreError as exc:
                # Not a passing condition (a bug, a broken row): the lease will expire and
                # the request is retried as an interrupted delivery.
                log.error("cannot record delivery result: %s", exc, extra={
                    "request_id": request.id, "upstream": self.upstream.name})
                return False
        if self.outcomes is not None:  # always, after __post_init__
            self.outcomes.finished(request.id, transition.status, transition.reason)
        self.observer.finished(self.upstream.name, request.id, transition.status,
                               transition.reason)
        return True
