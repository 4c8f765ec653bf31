"""Admin JSON API on the admin port: request lookup, listing, summary, retry, cancel.

Every /api/ route needs ``Authorization: Bearer <token>``; /healthz and /readyz do not.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from proxy import calls
from proxy.calls import InvalidTransition, Status
from proxy.policies.breaker import AsyncBreaker
from proxy.redact import masked_headers
from proxy.relay import Relay
from proxy.store.base import Conflict, Store, StoredAttempt, StoredRequest, StoreError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STORE = web.AppKey("store", Store)
TOKEN = web.AppKey("token", str)
BREAKERS = web.AppKey("breakers", dict[str, AsyncBreaker])
RELAY = web.AppKey("relay", Relay)

MAX_PAGE = 500


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def readable(body: bytes | None) -> str | None:
    """Bodies as text when they are UTF-8, otherwise tagged base64."""
    if body is None:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode()


def request_brief(r: StoredRequest) -> dict[str, Any]:
    return {
        "id": r.id, "upstream": r.upstream, "method": r.method, "path": r.path,
        "query": r.query, "status": r.status.value, "reason": r.reason,
        "attempt_count": r.attempts, "received_at": iso(r.received_at),
        "next_attempt_at": iso(r.next_attempt_at) if r.status is Status.PENDING else None,
        "updated_at": iso(r.updated_at), "retried_at": iso(r.retried_at),
    }


def attempt_json(a: StoredAttempt) -> dict[str, Any]:
    return {
        "number": a.number, "started_at": iso(a.started_at),
        "duration_ms": round(a.duration_s * 1000, 1), "outcome": a.verdict.value,
        "http_status": a.http_status, "error": a.error, "response": readable(a.response_body),
    }


async def request_detail(store: Store, r: StoredRequest) -> dict[str, Any]:
    attempts = [attempt_json(a) for a in await store.attempts(r.id)]
    return {
        **request_brief(r), "headers": masked_headers(r.headers), "body": readable(r.body),
        "attempts": attempts, "last_response": attempts[-1]["response"] if attempts else None,
    }


async def _found(store: Store, request_id: str) -> StoredRequest:
    r = await store.get(request_id)
    if r is None:
        raise ApiError(404, f"no request with id {request_id!r}")
    return r


async def get_request(request: web.Request) -> web.Response:
    store = request.app[STORE]
    r = await _found(store, request.match_info["id"])
    return web.json_response(await request_detail(store, r))


def _query_status(raw: str | None) -> Status | None:
    if not raw:
        return None
    try:
        return Status(raw)
    except ValueError:
        raise ApiError(400, f"status must be one of {', '.join(s.value for s in Status)}"
                       ) from None


def _query_limit(raw: str | None) -> int:
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


async def list_requests(request: web.Request) -> web.Response:
    q = request.query
    page = await request.app[STORE].search(
        status=_query_status(q.get("status")), upstream=q.get("upstream") or None,
        limit=_query_limit(q.get("limit")), cursor=q.get("cursor") or None,
    )
    return web.json_response({"items": [request_brief(r) for r in page.items],
                              "next_cursor": page.next_cursor})


async def summary(request: web.Request) -> web.Response:
    now = time.time()
    stored = await request.app[STORE].summary()
    out: dict[str, Any] = {}
    for name, breaker in request.app[BREAKERS].items():
        s = stored.get(name)
        counts: Mapping[Status, int] = s.counts if s else {}
        oldest = s.oldest_pending_at if s else None
        out[name] = {
            "counts": {st.value: counts.get(st, 0) for st in Status},
            "breaker": {"state": breaker.state.value, "opened_at": iso(breaker.opened_at),
                        "probe_at": iso(breaker.probe_at)},
            "oldest_pending_age_s": None if oldest is None else round(now - oldest, 3),
            "last_attempt_at": iso(s.last_attempt_at if s else None),
            "last_outcome": s.last_verdict.value if s and s.last_verdict else None,
        }
    return web.json_response({"upstreams": out, "generated_at": iso(now)})


async def _operate(request: web.Request,
                   decide: Callable[[Status, float], calls.Transition]) -> web.Response:
    store = request.app[STORE]
    r = await _found(store, request.match_info["id"])
    now = time.time()
    try:
        await store.transition(r.id, r.status, decide(r.status, now), now)
    except InvalidTransition as exc:
        raise ApiError(409, str(exc)) from None
    except Conflict:
        raise ApiError(409, "the request changed state meanwhile; reload and try again"
                       ) from None
    if RELAY in request.app:
        request.app[RELAY].wake(r.upstream)
    return web.json_response(await request_detail(store, await _found(store, r.id)))


async def retry(request: web.Request) -> web.Response:
    return await _operate(request, calls.operator_retry)


async def cancel(request: web.Request) -> web.Response:
    return await _operate(request, lambda status, _now: calls.operator_cancel(status))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].check_writable()
    except StoreError as exc:
        return web.json_response({"status": "not ready", "reason": exc.reason}, status=503)
    return web.json_response({"status": "ready"})


@web.middleware
async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token check for /api/, and the one place errors become HTTP answers."""
    try:
        if request.path.startswith("/api/"):
            given = request.headers.get("Authorization", "")
            expected = "Bearer " + request.app[TOKEN]
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise ApiError(401, "missing or wrong bearer token")
        return await handler(request)
    except ApiError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)
    except StoreError as exc:
        return web.json_response({"error": exc.reason}, status=503)


def create_admin_app(store: Store, token: str, breakers: dict[str, AsyncBreaker],
                     relay: Relay | None) -> web.Application:
    app = web.Application(middlewares=[errors_and_auth])
    app[STORE] = store
    app[TOKEN] = token
    app[BREAKERS] = breakers
    if relay is not None:
        app[RELAY] = relay
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/requests", list_requests)
    app.router.add_get("/api/v1/requests/{id}", get_request)
    app.router.add_post("/api/v1/requests/{id}/retry", retry)
    app.router.add_post("/api/v1/requests/{id}/cancel", cancel)
    app.router.add_get("/api/v1/summary", summary)
    return app
