"""Admin JSON API for maintenance windows (on the admin app, behind its /api/ auth).

    GET  /api/v1/maintenance?upstream=&include_past=true   {"items": [window, ...]}
    POST /api/v1/maintenance   {"upstream", "reason", "starts_at"?, "ends_at"? |
                                "duration_s"?}                  201 window
    POST /api/v1/maintenance/{id}/cancel                         200 window

Times are ISO 8601 with an offset ("2025-03-01T22:00:00+07:00") or Unix seconds;
``starts_at`` defaults to now, no end means "until cancelled". Changing windows needs
the maintain permission (the bearer token has it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from proxy.app_keys import CLOCK, MAINTENANCE, PRINCIPAL
from proxy.ops.admin_api import iso
from proxy.ops.admin_input import ApiError, json_object, whole_number
from proxy.ops.auth import Permission
from proxy.ops.maintenance import MAX_TIME, Maintenance, MaintenanceWindow

WINDOW_FIELDS = ("upstream", "reason", "starts_at", "ends_at", "duration_s")
# A window is hours of BPJS downtime; to hold an upstream longer, leave the end out.
MAX_DURATION_S = 366 * 86_400


def window_json(w: MaintenanceWindow, now: float) -> dict[str, Any]:
    return {"id": w.id, "upstream": w.upstream, "starts_at": iso(w.starts_at),
            "ends_at": iso(w.ends_at), "reason": w.reason, "created_by": w.created_by,
            "created_at": iso(w.created_at), "cancelled_at": iso(w.cancelled_at),
            "active": w.active_at(now)}


def parse_time(value: Any, key: str) -> float:
    """Unix seconds, or ISO 8601 with an explicit offset (a bare local time is refused:
    server, browser and BPJS announcement may each mean a different zone)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= MAX_TIME:  # also refuses NaN and ints too big for a float
            raise ApiError(400, f"{key}: Unix seconds from 0 to {MAX_TIME}")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ApiError(400, f"{key}: not an ISO 8601 time: {value!r}") from None
        if parsed.tzinfo is None:
            raise ApiError(400, f"{key}: give the offset, e.g. 2025-03-01T22:00:00+07:00")
        try:
            return parse_time(parsed.timestamp(), key)
        except OverflowError:  # 9999-12-31T23:59:59-14:00 is past datetime's range
            raise ApiError(400, f"{key}: Unix seconds from 0 to {MAX_TIME}") from None
    raise ApiError(400, f"{key}: expected an ISO 8601 string or Unix seconds")


def _service(request: web.Request) -> Maintenance:
    return request.app[MAINTENANCE]


def _may_change(request: web.Request) -> str:
    who = request[PRINCIPAL]
    if not who.can(Permission.MAINTAIN):
        raise ApiError(403, f"role {who.role.value} may not change maintenance windows")
    return who.name


async def list_windows(request: web.Request) -> web.Response:
    include_past = request.query.get("include_past", "").lower() in ("1", "true", "yes")
    windows = await _service(request).windows(request.query.get("upstream") or None,
                                              include_past=include_past)
    now = request.app[CLOCK]()
    return web.json_response({"items": [window_json(w, now) for w in windows]})


def _window_times(doc: dict[str, Any], now: float) -> tuple[float, float | None]:
    starts = now if doc.get("starts_at") is None else parse_time(doc["starts_at"], "starts_at")
    if doc.get("ends_at") is not None and doc.get("duration_s") is not None:
        raise ApiError(400, "give ends_at or duration_s, not both")
    if doc.get("duration_s") is not None:
        duration = doc["duration_s"]
        if not isinstance(duration, int | float) or isinstance(duration, bool) or \
                not 0 < duration <= MAX_DURATION_S:
            raise ApiError(400, f"duration_s: a positive number of seconds up to "
                           f"{MAX_DURATION_S} (a year); leave the end out to hold until "
                           "cancelled")
        return starts, starts + float(duration)
    ends = None if doc.get("ends_at") is None else parse_time(doc["ends_at"], "ends_at")
    return starts, ends


async def schedule_window(request: web.Request) -> web.Response:
    actor = _may_change(request)
    doc = await json_object(request, WINDOW_FIELDS)
    now = request.app[CLOCK]()
    starts, ends = _window_times(doc, now)
    upstream, reason = doc.get("upstream"), doc.get("reason")
    if not isinstance(upstream, str) or not isinstance(reason, str):
        raise ApiError(400, "upstream and reason are required strings")
    window = await _service(request).schedule(upstream, starts, ends, reason, actor)
    return web.json_response(window_json(window, request.app[CLOCK]()), status=201)


async def cancel_window(request: web.Request) -> web.Response:
    actor = _may_change(request)
    raw = request.match_info["id"]
    window_id = whole_number(raw)
    if window_id is None:
        raise ApiError(404, f"no maintenance window with id {raw!r}")
    service = _service(request)
    await service.cancel(window_id, actor)
    [window] = [w for w in await service.windows(include_past=True) if w.id == window_id]
    return web.json_response(window_json(window, request.app[CLOCK]()))


def add_maintenance_routes(app: web.Application, maintenance: Maintenance) -> None:
    """Register the maintenance API on the admin app (whose middleware authenticates)."""
    app[MAINTENANCE] = maintenance
    app.router.add_get("/api/v1/maintenance", list_windows)
    app.router.add_post("/api/v1/maintenance", schedule_window)
    app.router.add_post("/api/v1/maintenance/{id}/cancel", cancel_window)
