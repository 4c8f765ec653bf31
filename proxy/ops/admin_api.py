"""Admin JSON API on the admin port: request lookup, listing, summary, retry, cancel.

Every /api/ route needs ``Authorization: Bearer <token>`` or the session cookie of an
admin UI login (then a state-changing call also needs the session's ``X-CSRF-Token``
header and a role that may operate); /healthz and /readyz need neither (/readyz is intake's
answer, ``proxy.intake.readiness``, which the composition root adds to this app). The
admin UI (``admin_ui``) is mounted on the same application and shares its services.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from proxy.app_keys import (
    AUTH,
    BREAKERS,
    BULK,
    CHAIN_CHECKS,
    CLOCK,
    FULL_VIEWS,
    OPS,
    PRINCIPAL,
    RETENTION,
    SETTINGS,
    STORE,
    TOKEN,
)
from proxy.config import AdminConfig, UpstreamConfig
from proxy.errors import TenangError
from proxy.lifecycle import Status
from proxy.observe.redact import masked_headers
from proxy.ops.admin_input import ApiError
from proxy.ops.audit_chain import ChainChecks
from proxy.ops.auth import (
    SESSION_COOKIE,
    TOKEN_PRINCIPAL,
    Auth,
    Permission,
    Principal,
)
from proxy.ops.bulk import BulkRetries
from proxy.ops.disclosure import FullViews, shown_detail, shown_page
from proxy.ops.operations import Operations, Waker
from proxy.ops.request_log import BadParameter, list_page, read_query
from proxy.policies.breaker import AsyncBreaker
from proxy.shapes import (
    AttemptJson,
    RequestBrief,
    RequestDetail,
    Summary,
    UpstreamSummary,
    iso_utc,
)
from proxy.store.backend import Backend
from proxy.store.errors import Conflict, StoreError
from proxy.store.records import StoredAttempt, StoredRequest
from proxy.tokens import bearer_matches, same

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

def iso(ts: float | None) -> str | None:
    """``shapes.iso_utc`` (the one UTC format), None for no time."""
    return None if ts is None else iso_utc(ts)


def readable(body: bytes | None) -> str | None:
    """Bodies as text when they are UTF-8, otherwise tagged base64."""
    if body is None:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode()


def request_brief(r: StoredRequest) -> RequestBrief:
    return {
        "id": r.id, "upstream": r.upstream, "method": r.method, "path": r.path,
        "query": r.query, "status": r.status.value, "reason": r.reason,
        "attempt_count": r.attempts, "received_at": iso(r.received_at),
        "next_attempt_at": iso(r.next_attempt_at) if r.status is Status.PENDING else None,
        "updated_at": iso(r.updated_at), "retried_at": iso(r.retried_at),
        "endpoint": r.endpoint, "ordering_key": r.ordering_key, "held_by": r.held_by,
        "expires_at": iso(r.expires_at),
    }


def attempt_json(a: StoredAttempt) -> AttemptJson:
    return {
        "number": a.number, "started_at": iso(a.started_at),
        "duration_ms": round(a.duration_s * 1000, 1), "outcome": a.verdict.value,
        "http_status": a.http_status, "error": a.error, "response": readable(a.response_body),
    }


def detail_of(r: StoredRequest, stored: Sequence[StoredAttempt]) -> RequestDetail:
    """The request's detail document (also each record of a JSONL export)."""
    attempts = [attempt_json(a) for a in stored]
    return RequestDetail(
        **request_brief(r), headers=masked_headers(r.headers), body=readable(r.body),
        attempts=attempts, last_response=attempts[-1]["response"] if attempts else None,
    )


async def request_detail(request: web.Request, r: StoredRequest, via: str, *,
                         after_action: bool = False) -> RequestDetail:
    """``r`` as the caller may see it (identifiers masked, or a full view audited; after
    a retry or cancel, that action's audit entry is the record of it)."""
    ops = request.app[OPS]
    r, stored = await shown_detail(ops.audit_log, request[PRINCIPAL], r,
                                   await ops.log.attempts(r.id), via=via,
                                   at=request.app[CLOCK](), audited_by_action=after_action)
    return detail_of(r, stored)


async def get_request(request: web.Request) -> web.Response:
    r = await request.app[OPS].get(request.match_info["id"])
    return web.json_response(await request_detail(request, r, "api detail"))


async def list_requests(request: web.Request) -> web.Response:
    """The request log through the listing service, with every filter the UI has."""
    query = read_query(request.query)
    page = await list_page(request.app[STORE], query)
    items = await shown_page(request.app[OPS].audit_log, request[PRINCIPAL], page.items,
                             via="api list", at=request.app[CLOCK](),
                             seen=request.app[FULL_VIEWS], text=query.filter.text)
    return web.json_response({"items": [request_brief(r) for r in items],
                              "next_cursor": page.next_cursor, "capped": page.capped})


async def summary(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    out: dict[str, UpstreamSummary] = {}
    breakers = request.app[BREAKERS]
    for u in await request.app[OPS].overview(breakers):
        oldest = u.oldest_pending_at
        out[u.name] = {
            "counts": {st.value: u.counts.get(st, 0) for st in Status},
            "breaker": {"state": u.breaker_state.value, "opened_at": iso(u.opened_at),
                        "probe_at": iso(u.probe_at)},
            "oldest_pending_age_s": None if oldest is None else round(now - oldest, 3),
            "last_attempt_at": iso(u.last_attempt_at),
            "last_outcome": u.last_verdict.value if u.last_verdict else None,
            "sep_not_succeeded": u.sep_open,
        }
    return web.json_response(Summary(upstreams=out, generated_at=iso(now)))


async def retry(request: web.Request) -> web.Response:
    r = await request.app[OPS].retry(request.match_info["id"], request[PRINCIPAL].name)
    return web.json_response(await request_detail(request, r, "api retry", after_action=True))


async def cancel(request: web.Request) -> web.Response:
    r = await request.app[OPS].cancel(request.match_info["id"], request[PRINCIPAL].name)
    return web.json_response(await request_detail(request, r, "api cancel", after_action=True))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def api_principal(request: web.Request) -> Principal:
    """Who calls the API: the bearer token, else an admin UI session. A session must
    also send its CSRF token, and have an operating role, for anything but a read."""
    given = request.headers.get("Authorization")
    if given is not None:
        if bearer_matches(given, request.app[TOKEN]):
            return TOKEN_PRINCIPAL
        if not given.isascii():
            raise ApiError(401, "the Authorization header is not ASCII text (bytes that are "
                           "not UTF-8?): expected 'Bearer <token>'; wrong bearer token")
        raise ApiError(401, "missing or wrong bearer token")
    who = await request.app[AUTH].principal(request.cookies.get(SESSION_COOKIE))
    if who is None:
        raise ApiError(401, "missing or wrong bearer token (or log in to the admin UI)")
    if request.method not in ("GET", "HEAD"):
        if not same(request.headers.get("X-CSRF-Token"), who.csrf_token):
            raise ApiError(403, "missing or wrong X-CSRF-Token header")
        if not who.can(Permission.OPERATE):
            raise ApiError(403, f"role {who.role.value} may not change requests")
    return who


@web.middleware
async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication for /api/, and the one place errors become JSON answers (the UI's
    pages have theirs first: ``admin_ui.errors``)."""
    try:
        if request.path.startswith("/api/"):
            request[PRINCIPAL] = await api_principal(request)
        return await handler(request)
    except BadParameter as exc:  # which one, for a program to point at
        return web.json_response({"error": str(exc), "parameter": exc.parameter},
                                 status=exc.status)
    except TenangError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)
    except Conflict:
        return web.json_response(
            {"error": "the request changed state meanwhile; reload and try again"}, status=409)
    except StoreError as exc:
        return web.json_response({"error": exc.reason}, status=503)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if not request.path.startswith("/api/"):
            raise  # the UI's pages answer these themselves
        # The router's own answers (no such call, or not with this method), in JSON
        # like every other API error instead of aiohttp's plain text.
        allow = exc.headers.get("Allow")
        return web.json_response(
            {"error": f"{exc.reason}: {request.method} {request.path}"}, status=exc.status,
            headers={"Allow": allow} if allow else None)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    # Users from the config file must exist before anyone can log in as them.
    await app[AUTH].sync_users(app[SETTINGS].users)
    await app[BULK].resume()
    app[BULK].start_watching()
    yield
    await app[BULK].close()
    await app[CHAIN_CHECKS].close()


def create_admin_app(backend: Backend, token: str, breakers: dict[str, AsyncBreaker],
                     relay: Waker | None, settings: AdminConfig | None = None,
                     clock: Callable[[], float] = time.time,
                     upstreams: Mapping[str, UpstreamConfig] | None = None,
                     ) -> web.Application:
    """The admin application (JSON API and health checks) on ``backend``'s admin roles."""
    app = web.Application(middlewares=[errors_and_auth])
    settings = settings or AdminConfig()
    app[STORE] = backend.log
    app[TOKEN] = token
    app[CLOCK] = clock
    app[BREAKERS] = breakers
    app[SETTINGS] = settings
    app[OPS] = Operations(backend.log, backend.operator, backend.audit, relay, clock,
                          upstreams)
    app[AUTH] = Auth(backend.accounts, backend.sessions, backend.audit, settings, clock)
    app[BULK] = BulkRetries(app[OPS], backend.schedules, settings.bulk_batch,
                            settings.bulk_interval_s, clock)
    app[CHAIN_CHECKS] = ChainChecks(backend.chain, clock, backend.audit)
    app[RETENTION] = backend.retention
    app[FULL_VIEWS] = FullViews()
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/requests", list_requests)
    app.router.add_get("/api/v1/requests/{id}", get_request)
    app.router.add_post("/api/v1/requests/{id}/retry", retry)
    app.router.add_post("/api/v1/requests/{id}/cancel", cancel)
    app.router.add_get("/api/v1/summary", summary)
    return app
