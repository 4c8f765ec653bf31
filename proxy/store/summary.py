"""Folding raw rows into per-upstream summaries (shared by backends that cannot GROUP BY)."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.lifecycle import LIVE, Status, Verdict
from proxy.store.records import UpstreamSummary


def summarise(
    requests: Iterable[tuple[str, str, Status, float]],
    attempts: Iterable[tuple[str, float, Verdict]],
) -> dict[str, UpstreamSummary]:
    """``requests``: (id, upstream, status, received_at). The oldest waiting request is
    the first by id (ids are minted in receive order), as the SQLite index answers it."""
    counts: dict[str, dict[Status, int]] = {}
    first: dict[str, tuple[str, float]] = {}
    for request_id, upstream, status, received_at in requests:
        by_status = counts.setdefault(upstream, {})
        by_status[status] = by_status.get(status, 0) + 1
        if status in LIVE and (
                upstream not in first or request_id < first[upstream][0]):
            first[upstream] = (request_id, received_at)
    oldest = {upstream: at for upstream, (_, at) in first.items()}
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
