"""SIMRS-facing intake: match a configured upstream, apply the route's delivery mode,
answer only after commit.

Handlers stay thin: parse, call the store, serialise. Anything outside a configured
prefix is refused (Tenang is never an open proxy). Modes (proxy/bpjs/presets.py):
``queue`` stores and answers at once; ``deadline`` stores, then waits up to
``deadline_ms`` for BPJS's live answer; ``passthrough`` reads go live and fail fast.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from proxy.bpjs.keys import Body, UnkeyableBody, key_of
from proxy.bpjs.presets import (
    ACK_BPJS_OK,
    END_OF_SERVICE_DAY,
    Endpoint,
    Mode,
    default_methods,
    refused_method,
    resolve,
)
from proxy.bpjs.service_day import end_of_service_day
from proxy.config import Config, UpstreamConfig
from proxy.delivery.live import NOT_LIVE, LiveResult
from proxy.delivery.relay import Relay
from proxy.delivery.upstream import has_dot_segment
from proxy.ids import next_request_id
from proxy.intake.answers import WithId, already_accepted, bpjs_ok, envelope, queued
from proxy.intake.backpressure import Backpressure
from proxy.intake.credentials import IntakeAuth
from proxy.intake.dedup import dedup_key
from proxy.intake.headers import Forwarded, forwarded, live_headers, stored_headers
from proxy.intake.passthrough import Passthrough
from proxy.intake.paths import path_trick
from proxy.intake.results import add_results_route
from proxy.lifecycle import Status
from proxy.observe.observer import NULL_OBSERVER, Observer
from proxy.store.errors import StoreError
from proxy.store.protocols import Intake
from proxy.store.records import NewRequest, StoredRequest

log = logging.getLogger("tenang.gateway")

REQUEST_ID_HEADER = "X-Tenang-Request-Id"
DUPLICATE_HEADER = "X-Tenang-Duplicate-Of"
MAX_REMEMBERED_RULES = 4096
_SLASH_RUNS = re.compile(r"/{2,}")
STORE_REFUSED = "Tenang tidak dapat menyimpan permintaan / request not stored: {}. " \
                "Kirim ulang / please retry."


@dataclass(frozen=True, slots=True)
class Route:
    upstream: UpstreamConfig
    queued_body: WithId
    ok_body: bytes


class Gateway:
    def __init__(self, config: Config, store: Intake, relay: Relay | None,
                 observer: Observer = NULL_OBSERVER,
                 passthrough: Passthrough | None = None,
                 backpressure: Backpressure | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.observer = observer
        self.store = store
        self.relay = relay
        self.passthrough = passthrough
        self.backpressure = backpressure or Backpressure(config, store)
        self.auth = IntakeAuth(config.upstreams, observer=observer)
        self.routes = [(u.prefix.lower(), Route(u, queued(u.preset), bpjs_ok(u.preset)))
                       for u in config.upstreams]
        self.results_base = "/_tenang/requests/"
        self._rules: dict[tuple[str, str, str], Endpoint | Allow | BadPath] = {}

    def _rule(self, up: UpstreamConfig, method: str, path: str) -> Endpoint | Allow | BadPath:
        """The endpoint rule for ``path`` (below the prefix, raw), what is wrong with the
        path, or the methods allowed when ``method`` is not one of them; remembered per
        (upstream, method, path) as sent: writes hit a handful of fixed paths, and the path
        checks and matching the preset table are the costlier part."""
        key = (up.name, method, path)
        rule = self._rules.get(key)
        if rule is None:
            if len(self._rules) >= MAX_REMEMBERED_RULES:
                self._rules.clear()  # reads with ids in the path must not grow it forever
            rule = self._rules[key] = _rule_for(up, method, path)
        return rule

    def match(self, path: str) -> Route | None:
        lowered = path.lower()
        for prefix, route in self.routes:
            if lowered == prefix or lowered.startswith(prefix + "/"):
                return route
        return None

    async def handle(self, request: web.Request) -> web.Response:
        """No traceback reaches the SIMRS: an unexpected error still gets an envelope.

        (A try block here rather than a middleware: a middleware costs every request.)
        """
        try:
            return await self._intake(request)
        except Exception:
            log.exception("intake failed unexpectedly for %s %s", request.method,
                          request.path)
            return refuse(None, 500, "Kesalahan internal Tenang; permintaan mungkin tidak "
                          "tersimpan / internal Tenang error; the request may not have been "
                          "stored. Kirim ulang / please retry.")

    async def _intake(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        target = request.raw_path
        if not target.startswith("/"):
            # Absolute-form ("POST http://host/...") or authority-form: what follows the
            # host is not a path Tenang may slice, sign and send on.
            return refuse(None, 400, "Request target tidak valid / the request target must "
                          "be a path starting with '/'; Tenang is not an open proxy")
        path, query = canonical_target(target)
        route = self.match(path)
        if route is None:
            return refuse(None, 404, "Tidak ada upstream untuk path ini / no upstream is "
                          f"configured for {path!r}; Tenang is not an open proxy")
        up = route.upstream
        # Before anything is read, stored, sent live or answered from the read cache.
        denied = self.auth.refusal(up, request.headers, request.remote)
        if denied is not None:
            return refuse(up.preset, denied.status, denied.message)
        rule = self._rule(up, request.method, up.below_prefix(path))
        if isinstance(rule, BadPath):
            return refuse(up.preset, 400, rule.message)
        if isinstance(rule, Allow):
            return rule.refusal(up.preset, request.method, path)
        limit = self.config.server.max_body_bytes
        try:
            # Reads to EOF (chunked or not); past client_max_size it raises instead.
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large(up.preset, limit)
        except web.HTTPRequestTimeout:  # the body trickled past server.body_timeout_s
            return refuse(up.preset, 408, "Isi permintaan tidak diterima tepat waktu / "
                          "request body not received within server.body_timeout_s; "
                          "not stored")
        if rule.mode is Mode.PASSTHROUGH and self.passthrough is not None:
            return await self.passthrough.handle(request, up, rule, path, query, body)
        sent = forwarded(request, up.forwarded)
        try:
            call = self._new_request(request, up, rule, path, query, body, sent)
        except UnkeyableBody as exc:
            return refuse(up.preset, 400, f"{exc}; tidak disimpan, perbaiki sebelum kirim "
                          "ulang / not stored: fix it before sending again")
        try:
            # Admitted: the call's disk bytes are reserved until its store call ends.
            refusal = await self.backpressure.refusal(up, call)
        except StoreError as exc:
            return self._store_refused(up, exc)
        if refusal is not None:
            return refuse(up.preset, 503, STORE_REFUSED.format(refusal))
        # Deadline mode sends live while the SIMRS waits, if the breaker allows it now.
        # Every slot busy, it waits for one up to its deadline, ahead of the relay.
        deadline_s = rule.deadline_ms / 1000
        live = self.relay.live(up.name, deadline_s) if rule.mode is Mode.DEADLINE and \
            self.relay is not None else NOT_LIVE
        async with live:  # leaving it unsent hands the permit and the slot back
            call = live.lease(call)
            try:
                original = await self._store(call, up)
            except StoreError as exc:
                return self._store_refused(up, exc)
            finally:
                self.backpressure.stored(call)
            if original is not None:
                return self._duplicate(route, rule, original)
            self.backpressure.accepted(up.name)
            self.observer.accepted(up.name, call.endpoint, time.perf_counter() - started)
            if not live.permitted:
                if self.relay is not None:
                    self.relay.wake(up.name)
                return self._accepted(route, rule, call.id)
            live.start(call.as_stored(), live_headers(sent))
            live_reply = _live_reply(await live.result(live.remaining_s(deadline_s)))
        if live_reply is None:
            return self._accepted(route, rule, call.id)
        return live_reply.with_id(call.id)

    def _store_refused(self, up: UpstreamConfig, exc: StoreError) -> web.Response:
        log.error("intake refused, store error: %s", exc, extra={"upstream": up.name})
        return refuse(up.preset, 503, STORE_REFUSED.format(exc.reason))

    def _new_request(self, request: web.Request, up: UpstreamConfig, rule: Endpoint,
                     path: str, query: str, body: bytes, sent: Forwarded) -> NewRequest:
        received_at = self.clock()
        parsed = Body(body)
        ordering = key_of(parsed, rule.ordering_key)
        coalesce = key_of(parsed, rule.coalesce_key)
        return NewRequest(
            id=next_request_id(received_at), upstream=up.name, method=request.method,
            path=path, query=query, headers=stored_headers(sent), body=body,
            received_at=received_at, endpoint=rule.name,
            ordering_key=None if ordering is None else f"{up.name}:{ordering}",
            expires_at=end_of_service_day(received_at) if rule.expires == END_OF_SERVICE_DAY
            else None,
            dedup_key=dedup_key(up, rule, request, up.below_prefix(path), parsed),
            coalesce_key=None if coalesce is None else f"{up.name}:{path.lower()}:{coalesce}",
        )

    async def _store(self, call: NewRequest, up: UpstreamConfig) -> StoredRequest | None:
        """Commit ``call``; if it resubmits one still in play, return that one instead."""
        return await self.store.enqueue_or_match(call, up.dedup_window_s, call.received_at)

    def _accepted(self, route: Route, rule: Endpoint, request_id: str) -> web.Response:
        ok = rule.ack == ACK_BPJS_OK
        return web.Response(status=200 if ok else 202,
                            body=route.ok_body if ok else route.queued_body.render(request_id),
                            headers={
                                "Content-Type": "application/json",
                                REQUEST_ID_HEADER: request_id,
                                "Location": self.results_base + request_id})

    def _duplicate(self, route: Route, rule: Endpoint,
                   original: StoredRequest) -> web.Response:
        response = self._accepted(route, rule, original.id)
        if rule.ack != ACK_BPJS_OK:
            response.body = already_accepted(route.upstream.preset, original.id,
                                             original.status.value)
        response.headers[DUPLICATE_HEADER] = original.id
        return response


@dataclass(frozen=True, slots=True)
class BadPath:
    """A path refused with 400 whatever the method (dot segments, BPJS path tricks)."""

    message: str


def _rule_for(up: UpstreamConfig, method: str, path: str) -> Endpoint | Allow | BadPath:
    if has_dot_segment(path):
        return BadPath("Path tidak valid / path must not contain . or .. segments")
    trick = path_trick(path) if up.is_bpjs else None
    if trick is not None:
        return BadPath(f"Path tidak valid / a BPJS path must not contain {trick}; not "
                       "stored, not sent")
    allow = refused_method(up.preset, up.overrides, up.methods or default_methods(up.preset),
                           method, path)
    if allow is not None:
        return Allow(allow)
    return resolve(up.preset, up.overrides, method, path)


@dataclass(frozen=True, slots=True)
class Allow:
    """A method the path does not take: 405 naming the ones it does."""

    methods: tuple[str, ...]

    def refusal(self, preset: str, method: str, path: str) -> web.Response:
        allowed = ", ".join(self.methods)
        response = refuse(preset, 405, f"Metode {method} tidak diizinkan / method {method} "
                          f"is not allowed on {path} (allowed: {allowed}); not stored, "
                          "not sent")
        response.headers["Allow"] = allowed
        return response


@dataclass(frozen=True, slots=True)
class LiveReply:
    reply_status: int
    content_type: str
    body: bytes

    def with_id(self, request_id: str) -> web.Response:
        return web.Response(status=self.reply_status, body=self.body, headers={
            "Content-Type": self.content_type, REQUEST_ID_HEADER: request_id})


def _live_reply(result: LiveResult | None) -> LiveReply | None:
    """BPJS's own answer if it came within the deadline (``result`` not None) and
    settled the request (the SIMRS gets it byte for byte); None: answer "queued" instead
    (the send goes on)."""
    if result is None or result.reply is None or \
            result.status not in (Status.SUCCEEDED, Status.FAILED):
        return None
    reply = result.reply
    return LiveReply(reply.status, reply.headers.get("Content-Type", "application/json"),
                     reply.body)


def canonical_target(target: str) -> tuple[str, str]:
    """Path and query of an origin-form request target, still percent-encoded as the SIMRS
    sent them (decoding then re-encoding would turn ``%23`` into a fragment and ``%25``
    into something else). Runs of '/' collapse to one, so a SIMRS whose base URL ends in
    '/' (``/antreanrs//antrean/add``) gets its endpoint's rules and one stored spelling."""
    path, _, query = target.partition("#")[0].partition("?")
    if "//" in path:
        path = _SLASH_RUNS.sub("/", path)
    return path, query


EXPECT_REFUSED = ("Expect tidak didukung / only 'Expect: 100-continue' is supported; "
                  "not stored")


async def expect_continue(request: web.Request) -> None:
    """aiohttp's default Expect handling, its refusal in an envelope (the default
    answers plain text quoting the header, and a 500 for bytes it cannot quote)."""
    if request.version != aiohttp.HttpVersion11:
        return
    if request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the body's answer is still to come
        return
    raise web.HTTPExpectationFailed(text=envelope(None, 417, EXPECT_REFUSED).decode(),
                                    content_type="application/json")


def refuse(preset: str | None, status: int, message: str) -> web.Response:
    return web.Response(status=status, body=envelope(preset, status, message),
                        content_type="application/json")


def too_large(preset: str, limit: int) -> web.Response:
    return refuse(preset, 413, f"Isi permintaan terlalu besar / request body larger than "
                  f"{limit} bytes (server.max_body_bytes); not stored")


def create_gateway_app(gateway: Gateway) -> web.Application:
    app = web.Application(client_max_size=gateway.config.server.max_body_bytes)
    add_results_route(app, gateway.config, gateway.store)  # before the catch-all
    app.router.add_route("*", "/{tail:.*}", gateway.handle, expect_handler=expect_continue)
    return app
