"""Dashboard page, its polled JSON, and the per-upstream attempts chart (SVG)."""

from __future__ import annotations

from aiohttp import web

from admin_ui.dashboard import (
    CHART_BUCKET_S,
    CHART_HOURS,
    SHOWN_STATUSES,
    Card,
    card,
    chart,
    live_json,
)
from admin_ui.maintenance import windows_by_upstream
from admin_ui.render import render, translator
from proxy.app_keys import BREAKERS, CLOCK, MAINTENANCE, OPS, PRINCIPAL
from proxy.ops.auth import Permission
from proxy.ops.operations import DASHBOARD_MAX_AGE_S

NOTICES = frozenset({"maintenance_scheduled", "maintenance_cancelled"})


async def _cards(request: web.Request, now: float) -> list[Card]:
    t = translator(request)
    breakers = request.app[BREAKERS]
    overview = await request.app[OPS].overview(breakers, max_age_s=DASHBOARD_MAX_AGE_S)
    return [card(u, now, t) for u in overview]


async def dashboard(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    cards = await _cards(request, now)
    maintenance = request.app.get(MAINTENANCE)
    notice = request.query.get("done", "")
    return render(request, "dashboard.html", {
        "cards": cards, "now": now, "statuses": [s.value for s in SHOWN_STATUSES],
        "notice": notice if notice in NOTICES else "",
        "maintenance_enabled": maintenance is not None,
        "windows": await windows_by_upstream(maintenance, now),
        "can_maintain": request[PRINCIPAL].can(Permission.MAINTAIN),
    })


async def dashboard_json(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    return web.json_response(live_json(await _cards(request, now), now))


async def chart_svg(request: web.Request) -> web.Response:
    upstream = request.match_info["upstream"]
    if upstream not in request.app[BREAKERS]:
        raise web.HTTPNotFound()
    now = request.app[CLOCK]()
    # Bars on whole quarter hours (WIB is a whole-hour offset), so they do not shift on
    # every poll; the last bar is the quarter hour now running.
    since = now - now % CHART_BUCKET_S + CHART_BUCKET_S - CHART_HOURS * 3600
    buckets = await request.app[OPS].log.attempt_buckets(upstream, since, CHART_BUCKET_S)
    return render(request, "chart.svg", {
        "chart": chart(buckets, since, translator(request)), "upstream": upstream,
    }, content_type="image/svg+xml")
