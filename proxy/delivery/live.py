"""A live attempt: a deadline-mode send made while the SIMRS waits for BPJS's answer.

Such a send needs five things that used to be spread over intake and the relay: the
breaker's permit (it may be the half-open breaker's only probe), one of the lane's send
slots (``rate.max_concurrency`` counts live sends too; on a shared store, those of every
instance), the lease written into the row before it is stored (so no lane claims it
meanwhile, and registered with the lane, so its take-over never records it as an
interrupted send), the SIMRS's own signed headers (used for this send only, never
stored) and the future that carries the recorded result back to the waiting SIMRS.
``LiveAttempt`` holds them together, and the gateway enters and leaves it (``async
with``: on a shared store taking and returning the slot are store calls)::

    async with relay.live(upstream, deadline_s) as live:
        call = live.lease(call)             # unchanged when the breaker or slots said no
        ...store it; return early on a duplicate or a store error...
        live.start(stored, headers)         # permit and slot pass to the lane's delivery
        result = await live.result(live.remaining_s(deadline_s))

With no free slot it waits for one, up to its own deadline (``budget_s``, the time the
SIMRS waits for BPJS anyway), ahead of the relay's replays (``Slots.take_live``, see
proxy/delivery/concurrency.py); the SIMRS then waits for the answer what is left of the
deadline (``remaining_s``). Only when none comes in time is the request not sent live:
like one the breaker holds back, it is stored (once, not leased) for the relay, which
sends it as soon as a slot comes back.

It waits before it is stored: a row stored meanwhile would have to be leased to us (or
the relay would claim it) and, with no slot in time, handed back to the queue by a
further write. Until it is stored the SIMRS has no answer either, as during the commit
itself: Tenang killed meanwhile drops the connection, and the SIMRS sends it again (a
stopping Tenang lets the wait end first: intake stops before the relay).

The permit and the slot are handed back exactly once: on leaving, if it was never
started (refused, duplicate, store error, a bug, the SIMRS's request cancelled), and
otherwise by the delivery itself, which settles the permit with the send's result or
gives it back on every other way out (its ``Grant``), and frees the slot when it ends;
the send belongs to the lane, so it outlives the SIMRS's wait and counts as in flight at
shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from proxy import lifecycle
from proxy.delivery.upstream import Reply
from proxy.policies.breaker import Permit
from proxy.store.errors import StoreError
from proxy.store.records import NewRequest, StoredRequest

if TYPE_CHECKING:
    from proxy.delivery.relay import Lane


# A wait for a slot shorter than this was none (a free slot taken at once): the lane,
# which leaves the slots to a waiting live attempt, needs no waking.
WAITED_S = 0.001


@dataclass(frozen=True, slots=True)
class LiveResult:
    reply: Reply | None  # None: BPJS gave no answer
    status: lifecycle.Status | None  # where the request went (None: not recorded)


NOT_RECORDED = LiveResult(None, None)


class LiveAttempt:
    """One deadline-mode request's chance to be sent live; see the module docstring.

    Not entered through a relay (``NOT_LIVE``), or refused by the breaker, it is not
    ``permitted``: ``lease`` changes nothing and the request is left to the relay."""

    __slots__ = ("_budget_s", "_lane", "_leased", "_permit", "_slot", "_started", "answer",
                 "headers", "waited_s")

    def __init__(self, lane: Lane | None, budget_s: float = 0.0) -> None:
        """``budget_s``: how long it may wait for a send slot (0: not at all)."""
        self._lane = lane
        self._budget_s = budget_s
        self.waited_s = 0.0  # spent waiting for a slot, off the SIMRS's deadline
        self._permit: Permit | None = None
        self._slot: list[int] = []  # the send slot held, until started or left
        self._started = False
        self._leased: str | None = None  # the id ``lease`` registered with the lane
        self.headers: CIMultiDict[str] | None = None  # the SIMRS's own, once started
        self.answer: asyncio.Future[LiveResult] | None = None

    async def __aenter__(self) -> LiveAttempt:
        lane = self._lane
        if lane is None:
            return self
        permit = lane.d.breaker.try_acquire()
        if permit is None:
            return self
        started = time.monotonic()
        try:
            self._slot = await lane.slots.take_live(lane.clock, lane.lease_s, self._budget_s)
        except StoreError:
            pass  # no slot known to be ours: sent by the relay like any queued request
        except BaseException:
            lane.d.breaker.cancel(permit)
            raise
        finally:
            self.waited_s = time.monotonic() - started
            if self.waited_s > WAITED_S:
                lane.wakeup.set()  # the lane left the slots to it: they may be free now
        if self._slot:
            # The breaker may have moved while it waited (the backlog's sends failing):
            # a permit of the state before would send to an upstream known down, its
            # result ignored. Asked again at once (no await between), the same permit
            # comes back when nothing moved, the half-open probe included.
            lane.d.breaker.cancel(permit)
            permit = lane.d.breaker.try_acquire()
            if permit is None:
                await lane.release(self._slot)
        if self._slot and permit is not None:
            self._permit = permit
        elif permit is not None:
            lane.d.breaker.cancel(permit)  # no slot in time: the relay sends it later
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        permit, self._permit = self._permit, None
        self._forget_lease()
        if permit is None or self._started or self._lane is None:
            return
        # Never sent: the permit may be the half-open breaker's only probe, and kept
        # unused no send to this upstream would happen again; the slot would narrow the
        # upstream for every instance until its lease ran out.
        self._lane.d.breaker.cancel(permit)
        await self._lane.release(self._slot)

    @property
    def permitted(self) -> bool:
        """The breaker allows this send now and a slot is free for it (entered, not yet
        left)."""
        return self._permit is not None

    def lease(self, call: NewRequest) -> NewRequest:
        """``call`` leased to this process if it is to be sent live: stored ``in_flight``,
        so no lane claims it before ``start``."""
        if self._permit is None or self._lane is None:
            return call
        # The lease counts from now, not the receipt: the wait for a slot may have taken
        # most of a lease, and another instance would take the row over as soon as it is
        # committed. The commit may still outlast it on a loaded machine: until the send
        # starts, the lane's take-over must know the row is ours, or it records a send
        # that never happened as interrupted and sends it again.
        self._forget_lease()
        self._leased = call.id
        self._lane.leased.add(call.id)
        since = max(call.received_at, self._lane.clock())
        return dataclasses.replace(call, lease_owner=self._lane.d.owner,
                                   lease_expires_at=since + self._lane.lease_s)

    def _forget_lease(self) -> None:
        leased, self._leased = self._leased, None
        if leased is not None and self._lane is not None:
            self._lane.leased.discard(leased)

    def start(self, request: StoredRequest, headers: CIMultiDict[str]) -> None:
        """Send ``request`` (stored leased to us) now with the SIMRS's own ``headers``.
        From here the permit, the slot and the lease belong to the lane's delivery."""
        lane, permit = self._lane, self._permit
        if lane is None or permit is None or self._started:
            raise RuntimeError("a live attempt starts once, and only with a permit")
        self.headers = headers
        self.answer = asyncio.get_running_loop().create_future()
        lane.spawn(lane.d.deliver(request, permit, self), request.id, self._slot.pop())
        self._started = True
        self._forget_lease()  # delivering now, in the same step: no moment unowned

    def remaining_s(self, deadline_s: float) -> float:
        """What is left of the SIMRS's ``deadline_s`` for BPJS's answer, after the wait
        for a slot."""
        return max(0.0, deadline_s - self.waited_s)

    def settle(self, result: LiveResult) -> None:
        """The delivery's recorded result (called once it is stored, or it gave up)."""
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(result)

    async def result(self, deadline_s: float) -> LiveResult | None:
        """The recorded result if it comes within ``deadline_s``; None: it did not (the
        send goes on in the lane). The SIMRS's waiting never cancels the send."""
        if self.answer is None:
            raise RuntimeError("a live attempt has a result only once started")
        try:
            return await asyncio.wait_for(asyncio.shield(self.answer), deadline_s)
        except TimeoutError:
            return None


# Queue-mode requests, and a gateway without a relay: nothing is ever sent live. Shared,
# since an attempt without a lane has no state to change.
NOT_LIVE = LiveAttempt(None)
