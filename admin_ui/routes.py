"""Every admin UI route, in one place, with the permission each needs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from admin_ui import (
    views_audit,
    views_auth,
    views_bulk,
    views_dashboard,
    views_export,
    views_requests,
)
from admin_ui.errors import domain_errors
from admin_ui.guard import add_security_headers, guarded
from admin_ui.maintenance import cancel as cancel_window
from admin_ui.maintenance import schedule as schedule_window
from admin_ui.render import make_env
from proxy.app_keys import JINJA_ENV
from proxy.ops.auth import Permission

READ, OPERATE, EXPORT, MAINTAIN = (Permission.READ, Permission.OPERATE, Permission.EXPORT,
                                   Permission.MAINTAIN)
ID = r"{id:[0-9A-Za-z]{1,64}}"


def setup_ui(app: web.Application) -> None:
    """Mount the UI at ``/`` on the admin app made by ``proxy.ops.admin_api.create_admin_app``
    (whose services it uses). Maintenance windows are shown when the app has the
    maintenance service (``proxy.ops.maintenance_api.add_maintenance_routes``)."""
    app[JINJA_ENV] = make_env()
    # Inside the admin app's own middleware: UI pages get their errors as pages first.
    app.middlewares.append(domain_errors)
    app.on_response_prepare.append(add_security_headers)
    r = app.router
    r.add_get("/login", views_auth.login_form)
    r.add_post("/login", views_auth.login_submit)
    r.add_get("/lang/{lang}", views_auth.set_lang)
    r.add_post("/logout", guarded(READ, views_auth.logout))
    r.add_get("/", guarded(READ, views_dashboard.dashboard))
    r.add_get("/ui/dashboard.json", guarded(READ, views_dashboard.dashboard_json,
                                            json_api=True))
    r.add_get("/ui/chart/{upstream}.svg", guarded(READ, views_dashboard.chart_svg,
                                                  json_api=True))
    r.add_get("/requests", guarded(READ, views_requests.request_log))
    r.add_get("/requests.csv", guarded(EXPORT, views_requests.request_csv))
    r.add_get(f"/requests/{ID}", guarded(READ, views_requests.request_detail))
    r.add_post(f"/requests/{ID}/retry", guarded(OPERATE, views_requests.retry))
    r.add_post(f"/requests/{ID}/cancel", guarded(OPERATE, views_requests.cancel))
    r.add_get("/audit", guarded(EXPORT, views_audit.audit_log))
    r.add_get("/export", guarded(EXPORT, views_export.export_form))
    r.add_post("/export", guarded(EXPORT, views_export.export_download))
    r.add_post("/audit/verify", guarded(EXPORT, views_audit.verify_chain_now))
    r.add_get("/bulk", guarded(OPERATE, views_bulk.preview))
    r.add_post("/bulk", guarded(OPERATE, views_bulk.start))
    r.add_get(r"/bulk/{job_id:\d{1,9}}", guarded(READ, views_bulk.job_page))
    r.add_get(r"/bulk/{job_id:\d{1,9}}.json", guarded(READ, views_bulk.job_json,
                                                      json_api=True))
    r.add_post("/maintenance", guarded(MAINTAIN, schedule_window))
    r.add_post(r"/maintenance/{window_id:\d{1,9}}/cancel", guarded(MAINTAIN, cancel_window))
    static = Path(str(resources.files("admin_ui").joinpath("static")))
    r.add_static("/static", static, append_version=False)
