"""Maintenance windows on the dashboard: what is scheduled per upstream, and the admin
forms to schedule or cancel one. The service (``proxy.ops.maintenance.Maintenance``, put on
the admin app by ``proxy.ops.maintenance_api``) decides and applies windows; these
views only call it (it writes the audit log). Without the service nothing is shown."""

from __future__ import annotations

from aiohttp import web

from admin_ui.fmt import parse_day_time
from admin_ui.guard import error_page
from proxy.app_keys import CLOCK, MAINTENANCE, PRINCIPAL
from proxy.ops.maintenance import Maintenance, MaintenanceWindow


async def windows_by_upstream(maintenance: Maintenance | None,
                              now: float) -> dict[str, list[MaintenanceWindow]]:
    """Current and future windows, per upstream (empty without the service)."""
    out: dict[str, list[MaintenanceWindow]] = {}
    if maintenance is None:
        return out
    for w in await maintenance.windows():
        if w.cancelled_at is None or w.cancelled_at > now:
            out.setdefault(w.upstream, []).append(w)
    return out


def _service(request: web.Request) -> Maintenance:
    if MAINTENANCE not in request.app:
        raise web.HTTPNotFound()  # this Tenang runs without maintenance windows
    return request.app[MAINTENANCE]


async def schedule(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    form = await request.post()
    who = request[PRINCIPAL]
    starts_text, ends_text = str(form.get("starts_at", "")), str(form.get("ends_at", ""))
    starts_at = parse_day_time(starts_text) if starts_text else request.app[CLOCK]()
    ends_at = parse_day_time(ends_text) if ends_text else None
    if starts_at is None or (ends_text and ends_at is None):
        return error_page(request, 400, "maintenance.bad_time")
    # A window the service refuses (MaintenanceError) becomes admin_ui.errors' page.
    await service.schedule(
        str(form.get("upstream", "")), starts_at, ends_at, str(form.get("reason", "")),
        who.name)
    raise web.HTTPSeeOther("/?done=maintenance_scheduled")


async def cancel(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    who = request[PRINCIPAL]
    raw = request.match_info["window_id"]
    await service.cancel(int(raw), who.name)
    raise web.HTTPSeeOther("/?done=maintenance_cancelled")
