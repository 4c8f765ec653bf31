"""Store helpers for tests: what a test needs that no production consumer does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from proxy.bpjs.simulator.client import DEFAULT_USER_KEY
from proxy.lifecycle import Status, Transition
from proxy.store.backend import Backend
from proxy.store.memory import memory_backend
from proxy.store.memory.intake import MemoryIntake
from proxy.store.memory.queue import MemoryQueue
from proxy.store.memory.state import MemoryState
from proxy.store.protocols import Intake
from proxy.store.records import NewRequest


async def enqueue(intake: Intake, request: NewRequest) -> None:
    """Store ``request`` as intake stores a request nobody sent before (``Intake`` has
    no bare enqueue: production only ever calls ``enqueue_or_match``)."""
    original = await intake.enqueue_or_match(request, 0.0, request.received_at)
    assert original is None, f"{request.id}: its dedup key is held by {original.id}"


def bed_update(request_id: str, received_at: float, tersedia: int) -> NewRequest:
    """An Aplicare bed update of room R1 as intake stores it: coalesced under the room, so
    a later one supersedes it."""
    return NewRequest(
        id=request_id, upstream="aplicare", method="POST",
        path="/aplicare/rest/bed/update/0101R001", query="",
        headers=(("Content-Type", "application/json"), ("user_key", DEFAULT_USER_KEY)),
        body=b'{"kodekelas": "VIP", "koderuang": "R1", "tersedia": %d}' % tersedia,
        received_at=received_at, coalesce_key="aplicare:room-r1")


async def hand_back(backend: Backend, request_id: str, owner: str, now: float) -> None:
    """Return a claimed, unsent request to pending as it was before its claim, the way
    the relay hands back a claim it could not send (``complete_attempt`` without an
    attempt); Conflict unless ``owner`` holds its lease."""
    row = await backend.log.get(request_id)
    if row is None:
        await backend.queue.complete_attempt(
            request_id, owner, None, Transition(Status.PENDING, "handed back"), now)
        return
    await backend.queue.complete_attempt(request_id, owner, None, Transition(
        Status.PENDING, row.reason or "", next_attempt_at=row.next_attempt_at,
        reconcile_reads=row.reconcile_reads, own_faults=row.own_faults), now)


Q = TypeVar("Q", bound=MemoryQueue)
N = TypeVar("N", bound=MemoryIntake)


def memory_with_queue(make: Callable[[MemoryState], Q]) -> tuple[Backend, Q]:
    """An in-memory backend whose queue is ``make(state)`` (a test double that fails on
    purpose), and that queue."""
    state = MemoryState()
    queue = make(state)
    return dataclasses.replace(memory_backend(state), queue=queue), queue


def memory_with_intake(make: Callable[[MemoryState], N]) -> tuple[Backend, N]:
    """An in-memory backend whose intake is ``make(state)``, and that intake."""
    state = MemoryState()
    intake = make(state)
    return dataclasses.replace(memory_backend(state), intake=intake), intake
