"""In-memory ``Operator``."""

from __future__ import annotations

from proxy import lifecycle
from proxy.lifecycle import Status, Transition
from proxy.store.errors import Conflict
from proxy.store.memory.state import MemoryState, moved
from proxy.store.records import NewAudit, NewCallback


class MemoryOperator:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def transition(
        self, request_id: str, expected: Status, transition: Transition, now: float,
        callback: NewCallback | None = None, audit: NewAudit | None = None,
    ) -> None:
        s = self._s
        s.live()
        lifecycle.ensure_allowed(expected, transition.status)
        row = s.rows.get(request_id)
        if row is None or row.status is not expected:
            raise Conflict(f"{request_id}: not {expected.value}")
        moved_row = moved(
            row, transition.status, reason=transition.reason,
            next_attempt_at=transition.next_attempt_at, updated_at=now,
            retried_at=transition.retried_at or row.retried_at,
            reconcile_reads=transition.reconcile_reads, own_faults=transition.own_faults,
        )
        if callback is not None:
            s.queue_callback(request_id, callback, now)
        s.rows[request_id] = moved_row
        s.link_states([(request_id, transition.reason)], expected.value,
                      transition.status.value, now)
        if audit is not None:  # no await in between: one step with the move
            s.append_audit(audit.actor, audit.action, request_id, audit.detail, now)
