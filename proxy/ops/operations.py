"""What operators do to stored requests, shared by the admin JSON API and the admin UI:
look up, retry now, cancel, and the per-upstream overview the dashboard and /summary show.

The state machine (``proxy.lifecycle``) decides every move; the store persists it only if
the request is still in the state the decision was made for. Every change is written to
the audit log with who asked, in the change's transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from proxy import lifecycle
from proxy.config import UpstreamConfig
from proxy.delivery.callbacks import callback_for
from proxy.errors import TenangError
from proxy.lifecycle import Status, Verdict
from proxy.policies.breaker import AsyncBreaker, BreakerState
from proxy.store.protocols import AuditLog, Operator, RequestLog
from proxy.store.records import NewAudit, StoredRequest, UpstreamSummary

# Every open dashboard polls the overview; its store queries are cheap (counts kept by
# the store, the oldest by index: ~1 ms at 1,000,000 queued), yet many browsers polling
# need not each read: the UI lets polls within this long share a reading.
DASHBOARD_MAX_AGE_S = 1.0


class NotFound(TenangError, LookupError):
    status = 404

    def __init__(self, request_id: str) -> None:
        super().__init__(f"no request with id {request_id!r}")


class Waker(Protocol):
    """The relay, as far as operations need it: "this upstream has new due work"."""

    def wake(self, upstream: str) -> None: ...


@dataclass(frozen=True, slots=True)
class UpstreamOverview:
    name: str
    breaker_state: BreakerState
    opened_at: float | None
    probe_at: float | None
    counts: Mapping[Status, int] = field(default_factory=dict)
    oldest_pending_at: float | None = None
    last_attempt_at: float | None = None
    last_verdict: Verdict | None = None
    sep_open: int = 0  # SEP requests not yet succeeded (see lifecycle.OPEN)


Decide = Callable[[StoredRequest, float], lifecycle.Transition]


class Operations:
    def __init__(self, log: RequestLog, operator: Operator, audit_log: AuditLog,
                 relay: Waker | None, clock: Callable[[], float] = time.time,
                 upstreams: Mapping[str, UpstreamConfig] | None = None) -> None:
        # The admin API, the UI and bulk retries read through ``log`` and ``audit_log``.
        self.log = log
        self.audit_log = audit_log
        self._operator = operator
        self._relay = relay
        self._clock = clock
        self._upstreams = upstreams or {}
        self._stored: tuple[float, dict[str, UpstreamSummary], dict[str, int]] | None = None
        self._reading = asyncio.Lock()

    async def get(self, request_id: str) -> StoredRequest:
        r = await self.log.get(request_id)
        if r is None:
            raise NotFound(request_id)
        return r

    async def retry(self, request_id: str, actor: str,
                    detail: str | None = None) -> StoredRequest:
        """failed / dead / held -> pending, due now. Raises NotFound, InvalidTransition,
        or Conflict when the request moved meanwhile."""
        return await self._operate(
            request_id, actor, "retry",
            lambda r, now: lifecycle.operator_retry(r.status, now, r.reconcile_reads,
                                                    body_purged=r.purged_at is not None),
            detail)

    async def cancel(self, request_id: str, actor: str,
                     detail: str | None = None) -> StoredRequest:
        """pending / failed / dead / held -> cancelled (same errors as ``retry``)."""
        return await self._operate(request_id, actor, "cancel",
                                   lambda r, _now: lifecycle.operator_cancel(r.status), detail)

    async def _operate(self, request_id: str, actor: str, action: str, decide: Decide,
                       detail: str | None) -> StoredRequest:
        r = await self.get(request_id)
        now = self._clock()
        transition = decide(r, now)
        upstream = self._upstreams.get(r.upstream)
        # A cancel is a final state: the SIMRS's callback hears of it like any other.
        callback = None if upstream is None else callback_for(upstream, r, transition, None,
                                                              now, attempts=r.attempts)
        audit = NewAudit(actor, action, f"{r.status.value} -> {transition.status.value}"
                         + (f"; {detail}" if detail else ""))
        await self._operator.transition(r.id, r.status, transition, now, callback=callback,
                                    audit=audit)
        if self._relay is not None:
            self._relay.wake(r.upstream)
        return await self.get(r.id)

    async def overview(self, breakers: Mapping[str, AsyncBreaker], *,
                       max_age_s: float = 0.0) -> list[UpstreamOverview]:
        """One entry per configured upstream (the breakers' order), with what the store
        knows of it, read at most ``max_age_s`` ago (breaker states are always live)."""
        stored, sep = await self._stored_overview(max_age_s)
        out = []
        for name, breaker in breakers.items():
            s = stored.get(name)
            out.append(UpstreamOverview(
                name=name, breaker_state=breaker.state, opened_at=breaker.opened_at,
                probe_at=breaker.probe_at, counts=s.counts if s else {},
                oldest_pending_at=s.oldest_pending_at if s else None,
                last_attempt_at=s.last_attempt_at if s else None,
                last_verdict=s.last_verdict if s else None, sep_open=sep.get(name, 0)))
        return out

    async def _stored_overview(self, max_age_s: float
                               ) -> tuple[dict[str, UpstreamSummary], dict[str, int]]:
        async with self._reading:  # concurrent polls wait for the one reading under way
            now = time.monotonic()
            if self._stored is None or now - self._stored[0] >= max_age_s:
                self._stored = (now, await self.log.summary(),
                                await self.log.sep_open_counts())
            return self._stored[1], self._stored[2]

