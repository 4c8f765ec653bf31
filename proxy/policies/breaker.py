"""A pybreaker circuit breaker driven from asyncio, with one half-open probe at a time.

pybreaker's own ``call`` is synchronous (its async path needs tornado), so the send
happens outside it: ``try_acquire`` asks for permission before sending and ``record``
reports the result afterwards, which pybreaker counts through its normal state
machine. Results of sends that started before the breaker opened are ignored, so a
burst of late failures cannot re-open it and a late success cannot close it.

A maintenance window forces the breaker open (``force_open``): no permit at all, not even
a probe, until ``release`` hands it back to the normal cycle through one half-open probe.

Several instances on one store share one breaker per upstream (``share``, driven by
``delivery.shared_breaker``): each still counts its own consecutive failures and decides
its own moves, which the store then settles (one instance wins each move; the others
``adopt`` the winner's state), and a probe needs the store's probe lease, so the
instances together send one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import pybreaker


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half-open"
    OPEN = "open"


class _TransientFailure(Exception):
    """Stand-in raised inside pybreaker so it counts one failure."""


StateListener = Callable[[str, BreakerState, BreakerState], None]

_MOVE = {
    BreakerState.CLOSED: pybreaker.CircuitBreaker.close,
    BreakerState.OPEN: pybreaker.CircuitBreaker.open,
    BreakerState.HALF_OPEN: pybreaker.CircuitBreaker.half_open,
}


@dataclass(frozen=True, slots=True)
class Permit:
    probe: bool
    generation: int


class Grant:
    """One send's hold on a ``Permit``, settled exactly once: by the send's result
    (``record``) or by handing it back unused (``give_back``); whatever comes later is a
    no-op. The holder can then settle it on every way out (a ``finally``) without
    reasoning about which of them already did: a probe settled twice could free the
    next probe's slot, one never settled would stop every send to the upstream."""

    __slots__ = ("breaker", "permit", "settled")

    def __init__(self, breaker: AsyncBreaker, permit: Permit) -> None:
        self.breaker = breaker
        self.permit = permit
        self.settled = False

    def record(self, *, failure: bool) -> None:
        if not self.settled:
            self.settled = True
            self.breaker.record(self.permit, failure=failure)

    def give_back(self) -> None:
        if not self.settled:
            self.settled = True
            self.breaker.cancel(self.permit)


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: AsyncBreaker) -> None:
        self._owner = owner

    def state_change(self, cb: pybreaker.CircuitBreaker,
                     old_state: pybreaker.CircuitBreakerState | None,
                     new_state: pybreaker.CircuitBreakerState) -> None:
        old = BreakerState(old_state.name) if old_state else BreakerState.CLOSED
        self._owner._changed(old, BreakerState(new_state.name))


class AsyncBreaker:
    def __init__(self, name: str, fail_max: int, reset_timeout_s: float,
                 on_change: StateListener | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._clock = clock
        self.reset_timeout_s = reset_timeout_s
        self._on_change = on_change
        self._probe_in_flight = False
        self._generation = 0  # bumps on every state change; stale results are dropped
        self._forced = False
        self.opened_at: float | None = None
        # Shared with other instances (``share``): who hears the moves made here, whether
        # one is being adopted (not made here), and until when this instance holds the
        # store's probe lease.
        self._on_move: Callable[[], None] | None = None
        self._adopting = False
        self._probe_lease_until: float | None = None
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_timeout_s, name=name,
            listeners=[_Listener(self)], throw_new_error_on_trip=False,
        )

    @property
    def state(self) -> BreakerState:
        return BreakerState(self._cb.current_state)

    @property
    def forced(self) -> bool:
        """True while a maintenance window holds the breaker open."""
        return self._forced

    @property
    def probing(self) -> bool:
        """True while the half-open probe is out (granted and not yet settled)."""
        return self._probe_in_flight

    @property
    def probe_at(self) -> float | None:
        """Wall-clock time of the next half-open probe while open (None while forced:
        no probe runs until ``release``)."""
        if self._forced:
            return None
        if self.state is BreakerState.OPEN and self.opened_at is not None:
            return self.opened_at + self.reset_timeout_s
        return None

    def try_acquire(self, now: float | None = None) -> Permit | None:
        """Permission to send one request now, or None while the circuit forbids it."""
        if self._forced:
            return None
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(probe=False, generation=self._generation)
        if self._probe_in_flight:
            return None
        if self._on_move is not None:
            # Shared: the probe is the store's lease, and only its holder sends it.
            t = self._clock() if now is None else now
            if self._probe_lease_until is None or t >= self._probe_lease_until:
                return None
            self._probe_in_flight = True
            return Permit(probe=True, generation=self._generation)
        probe_at = self.probe_at
        if state is BreakerState.OPEN and probe_at is not None and \
                (self._clock() if now is None else now) < probe_at:
            return None
        if state is BreakerState.OPEN:
            self._cb.half_open()
        self._probe_in_flight = True
        return Permit(probe=True, generation=self._generation)

    def record(self, permit: Permit, *, failure: bool) -> None:
        """Report the result of a send made under ``permit``."""
        stale = permit.generation != self._generation
        if permit.probe and not stale:
            self._probe_in_flight = False
        if stale or self._forced:
            # Sent before the last state change (or before a maintenance window forced
            # the breaker open): its result must not close, re-open or re-time it.
            return
        if failure:
            # pybreaker re-raises after counting; opening is reported via state_change.
            with contextlib.suppress(_TransientFailure, pybreaker.CircuitBreakerError):
                self._cb.call(_raise_transient)
        else:
            self._cb.call(_succeed)

    def cancel(self, permit: Permit) -> None:
        """The permitted send never happened (e.g. nothing was due)."""
        if permit.probe and permit.generation == self._generation:
            self._probe_in_flight = False

    def force_open(self) -> None:
        """Hold the breaker open until ``release`` (maintenance). Idempotent; listeners
        hear closed/half-open -> open once, nothing when it was open already."""
        if self._forced:
            return
        self._forced = True
        self._probe_in_flight = False
        if self.state is not BreakerState.OPEN:
            self._cb.open()
        else:
            # Still bump the generation: a probe granted just before must not count.
            self._generation += 1

    def release(self) -> None:
        """End a forced opening: the next permit is one half-open probe, so a backend
        still down after its announced window re-opens the breaker after a single send.
        Idempotent; a no-op unless forced."""
        if not self._forced:
            return
        self._forced = False
        if self.state is BreakerState.OPEN:
            self._cb.half_open()

    def share(self, on_move: Callable[[], None]) -> None:
        """Make this one instance's view of a breaker several instances share: probes
        only under the store's lease (``adopt(..., probe_until=)``), and ``on_move``
        hears every move made here (not those adopted), for the store to settle."""
        self._on_move = on_move

    def adopt(self, state: BreakerState, opened_at: float | None, *,
              probe_until: float | None = None) -> None:
        """Take on the state the store holds (another instance's move, or this one's
        probe lease until ``probe_until``). Listeners hear a change as from a move made
        here; ``on_move`` does not. Sends permitted before no longer count, as after any
        move: their results belong to the state they were sent in."""
        self._adopting = True
        try:
            if state is not self.state:
                _MOVE[state](self._cb)
            else:
                self._generation += 1
        finally:
            self._adopting = False
        self._probe_in_flight = False
        self.opened_at = None if state is BreakerState.CLOSED else opened_at
        self._probe_lease_until = probe_until

    def _changed(self, old: BreakerState, new: BreakerState) -> None:
        self._generation += 1
        self._probe_lease_until = None  # every move ends a probe lease
        if new is BreakerState.OPEN:
            self.opened_at = self._clock()
        elif new is BreakerState.CLOSED:
            self.opened_at = None
        if self._on_change is not None:
            self._on_change(self.name, old, new)
        if self._on_move is not None and not self._adopting:
            self._on_move()


def _raise_transient() -> None:
    raise _TransientFailure


def _succeed() -> None:
    return None
