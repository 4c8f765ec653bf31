"""Every key Tenang's aiohttp applications keep their services under, in one neutral place.

The admin app (JSON API, maintenance API, /metrics, /readyz and the admin UI mounted on
it) reads its services through these keys. They are declared here, not in whichever
module sets them, so a handler needs no other handler's module just for a key (the UI
used to import the JSON API for its keys). Imports nothing from Tenang at run time (the
types are for mypy only), so every module may import it without a cycle.

The BPJS simulator is an application of its own and keeps its one key beside its state
(``proxy.bpjs.simulator.state.STATE``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import jinja2

    from proxy.config import AdminConfig
    from proxy.intake.backpressure import Backpressure
    from proxy.observe.metrics import Metrics
    from proxy.ops.audit_chain import ChainChecks
    from proxy.ops.auth import Auth, Principal
    from proxy.ops.bulk import BulkRetries
    from proxy.ops.disclosure import FullViews
    from proxy.ops.export import PageSource
    from proxy.ops.maintenance import Maintenance
    from proxy.ops.operations import Operations
    from proxy.policies.breaker import AsyncBreaker
    from proxy.store.protocols import Engine, RequestLog, Retention

# --- the admin app ----------------------------------------------------------------------
STORE: web.AppKey[RequestLog] = web.AppKey("store")
TOKEN: web.AppKey[str] = web.AppKey("token")  # the admin API's bearer token
BREAKERS: web.AppKey[dict[str, AsyncBreaker]] = web.AppKey("breakers")
SETTINGS: web.AppKey[AdminConfig] = web.AppKey("admin_settings")
OPS: web.AppKey[Operations] = web.AppKey("operations")
AUTH: web.AppKey[Auth] = web.AppKey("auth")
BULK: web.AppKey[BulkRetries] = web.AppKey("bulk_retries")
# The hash chain's verifications started from the UI, and its status (``ops.audit_chain``).
CHAIN_CHECKS: web.AppKey[ChainChecks] = web.AppKey("chain_checks")
# Which requests each principal was shown in full lately (``ops.disclosure``).
FULL_VIEWS: web.AppKey[FullViews] = web.AppKey("full_views")
# What retention purged (its tombstones): the UI's detail and audit pages say so.
RETENTION: web.AppKey[Retention] = web.AppKey("retention")
# The clock Tenang(clock=...) runs on: handlers read the time here, never time.time().
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
# Set only when this Tenang runs maintenance windows.
MAINTENANCE: web.AppKey[Maintenance] = web.AppKey("maintenance")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
METRICS_TOKEN: web.AppKey[str] = web.AppKey("metrics_token")  # "": /metrics is open
# The export for auditors reads its rows here (``proxy.store.export_reader``).
EXPORT_PAGES: web.AppKey[PageSource] = web.AppKey("export_pages")
# The admin UI's template environment (``admin_ui.render.make_env``).
JINJA_ENV: web.AppKey[jinja2.Environment] = web.AppKey("jinja_env")

# --- /readyz (on the admin app) -----------------------------------------------------------
READY_STORE: web.AppKey[Engine] = web.AppKey("ready_store")
BACKPRESSURE: web.AppKey[Backpressure] = web.AppKey("backpressure")  # optional

# --- per request ---------------------------------------------------------------------
# Who is calling: the API token or a UI session (set by the admin app's auth).
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
# True for an admin UI page (not a view polled by scripts): its domain errors are
# answered with an HTML error page (``admin_ui.errors``) instead of JSON.
UI_PAGE: web.RequestKey[bool] = web.RequestKey("ui_page")
