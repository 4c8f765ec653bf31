"""GET /readyz: whether intake can accept a request now, so a load balancer stops
sending while it cannot.

Ready means: the store takes a write, free disk is above ``store.min_free_mb`` (with
what was admitted since the last sample counted in), and no upstream's queue is at its
``max_pending``. Cheap enough to poll every second: one small write, and backpressure's
running state (never a full count of the queue).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.app_keys import BACKPRESSURE, READY_STORE
from proxy.intake.backpressure import MIB, Backpressure, DiskReadiness
from proxy.store.errors import StoreError
from proxy.store.protocols import Engine


async def readiness(store: Engine, backpressure: Backpressure | None,
                    only: str | None = None) -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body naming every reason it is not). With ``only``, the queue of
    that upstream alone counts (every upstream is still reported)."""
    problems: list[str] = []
    doc: dict[str, Any] = {"store": {"writable": True}}
    try:
        await store.check_writable()
    except StoreError as exc:
        doc["store"]["writable"] = False
        problems.append(f"store not writable: {exc.reason}")
    if backpressure is not None:
        try:
            disk, upstreams = await backpressure.readiness()
        except StoreError as exc:  # the queue could never be counted
            problems.append(f"queue cannot be counted: {exc.reason}")
        else:
            problems += _disk(doc, disk)
            doc["upstreams"] = {}
            for up in upstreams:
                doc["upstreams"][up.name] = {"ready": not up.full, "queued": up.queued,
                                             "max_pending": up.max_pending or None}
                if up.full and only in (None, up.name):
                    problems.append(f"queue for {up.name} is full ({up.queued} waiting, "
                                    f"max_pending={up.max_pending})")
    ready = not problems
    head: dict[str, Any] = {"status": "ready" if ready else "not ready"}
    if problems:
        head["reason"] = "; ".join(problems)
    return ready, {**head, **doc}


def _disk(doc: dict[str, Any], disk: DiskReadiness) -> list[str]:
    if not disk.min_free_bytes:
        return []
    free_mb = max(disk.free_bytes, 0) / MIB
    doc["store"]["free_mb"] = round(free_mb, 1)
    doc["store"]["min_free_mb"] = disk.min_free_bytes // MIB
    if not disk.low:
        return []
    return [f"disk almost full ({free_mb:.1f} MiB free, floor store.min_free_mb="
            f"{disk.min_free_bytes // MIB})"]


async def readyz(request: web.Request) -> web.Response:
    """``?upstream=NAME``: ready for that upstream's intake (a balancer routing by path
    prefix keeps sending Antrean while VClaim's queue is full)."""
    backpressure = request.app.get(BACKPRESSURE)
    only = request.query.get("upstream")
    if only is not None and (backpressure is None or only not in backpressure.caps):
        return web.json_response({"error": f"no upstream named {only!r}"}, status=404)
    ready, doc = await readiness(request.app[READY_STORE], backpressure, only)
    return web.json_response(doc, status=200 if ready else 503)


def add_readiness_route(app: web.Application, store: Engine,
                        backpressure: Backpressure | None) -> None:
    """Serve ``GET /readyz`` on ``app`` (the admin port, where balancers and the Docker
    health check ask). Intake owns the answer; the composition root mounts it, so the
    admin API need not import intake."""
    app[READY_STORE] = store
    if backpressure is not None:
        app[BACKPRESSURE] = backpressure
    app.router.add_get("/readyz", readyz)
