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

from proxy.backpressure import MIB, Backpressure
from proxy.store.base import Store, StoreError

READY_STORE = web.AppKey("ready_store", Store)
BACKPRESSURE = web.AppKey("backpressure", Backpressure)


async def readiness(store: Store, backpressure: Backpressure | None
                    ) -> tuple[bool, dict[str, Any]]:
    """(ready, the JSON body naming every reason it is not)."""
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
            if disk.min_free_bytes:
                doc["store"]["free_mb"] = round(max(disk.free_bytes, 0) / MIB, 1)
                doc["store"]["min_free_mb"] = disk.min_free_bytes // MIB
            if disk.low:
                problems.append(f"disk almost full ({max(disk.free_bytes, 0) / MIB:.1f} "
                                f"MiB free, floor store.min_free_mb="
                                f"{disk.min_free_bytes // MIB})")
            doc["upstreams"] = {}
            for up in upstreams:
                doc["upstreams"][up.name] = {"ready": not up.full, "queued": up.queued,
                                             "max_pending": up.max_pending or None}
                if up.full:
                    problems.append(f"queue for {up.name} is full ({up.queued} waiting, "
                                    f"max_pending={up.max_pending})")
    ready = not problems
    head: dict[str, Any] = {"status": "ready" if ready else "not ready"}
    if problems:
        head["reason"] = "; ".join(problems)
    return ready, {**head, **doc}


async def readyz(request: web.Request) -> web.Response:
    ready, doc = await readiness(request.app[READY_STORE], request.app.get(BACKPRESSURE))
    return web.json_response(doc, status=200 if ready else 503)
