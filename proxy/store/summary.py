"""Folding raw rows into per-upstream summaries (shared by backends that cannot GROUP BY)."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.calls import Status, Verdict
from proxy.store.base import UpstreamSummary


def summarise(
    requests: Iterable[tuple[str, Status, float]],
    attempts: Iterable[tuple[str, float, Verdict]],
) -> dict[str, UpstreamSummary]:
    counts: dict[str, dict[Status, int]] = {}
    oldest: dict[str, float] = {}
    for upstream, status, received_at in requests:
        by_status = counts.setdefault(upstream, {})
        by_status[status] = by_status.get(status, 0) + 1
        if status in (Status.PENDING, Status.IN_FLIGHT):
            oldest[upstream] = min(oldest.get(upstream, received_at), received_at)
    last: dict[str, tuple[float, Verdict]] = {}
    for upstream, started_at, verdict in attempts:
        if upstream not in last or started_at > last[upstream][0]:
            last[upstream] = (started_at, verdict)
    return {
        name: UpstreamSummary(
            counts=counts.get(name, {}),
            oldest_pending_at=oldest.get(name),
            last_attempt_at=last[name][0] if name in last else None,
            last_verdict=last[name][1] if name in last else None,
        )
        for name in counts.keys() | last.keys()
    }
