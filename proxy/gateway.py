"""SIMRS-facing intake: match a configured upstream, persist, answer only after commit.

Handlers stay thin: parse, call the store, serialise. Anything outside a configured
prefix is refused (Tenang is never an open proxy).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiohttp import web

from proxy.bpjs.keys import key_of
from proxy.bpjs.presets import END_OF_SERVICE_DAY, resolve
from proxy.bpjs.service_day import end_of_service_day
from proxy.config import Config, UpstreamConfig
from proxy.envelopes import envelope, queued
from proxy.ids import new_request_id
from proxy.observe import NULL_OBSERVER, Observer
from proxy.relay import Relay
from proxy.store.base import Headers, NewRequest, Store, StoreError

log = logging.getLogger("tenang.gateway")

# Never stored: hop-by-hop headers (RFC 9110 §7.6.1), values the client recomputes, and
# X-signature, which is a credential bound to the SIMRS's own timestamp.
DROPPED_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    "x-signature",
})


@dataclass(frozen=True, slots=True)
class Route:
    upstream: UpstreamConfig
    queued_body: bytes


class Gateway:
    def __init__(self, config: Config, store: Store, relay: Relay | None,
                 observer: Observer = NULL_OBSERVER) -> None:
        self.config = config
        self.observer = observer
        self.store = store
        self.relay = relay
        self.routes = [(u.prefix.lower(), Route(u, queued(u.preset))) for u in config.upstreams]
        self.admin_base = f"http://{config.server.admin_listen}/api/v1/requests/"

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
        route = self.match(request.path)
        if route is None:
            return refuse(None, 404, "Tidak ada upstream untuk path ini / no upstream is "
                          f"configured for {request.path!r}; Tenang is not an open proxy")
        preset = route.upstream.preset
        if "/." in request.path and any(seg in ("..", ".") for seg in request.path.split("/")):
            return refuse(preset, 400, "Path tidak valid / path must not contain . or .. "
                          "segments")
        limit = self.config.server.max_body_bytes
        try:
            # Reads to EOF (chunked or not); past client_max_size it raises instead.
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large(preset, limit)
        received_at = time.time()
        up = route.upstream
        path = request.raw_path.split("?", 1)[0]
        rule = resolve(up.preset, up.overrides, request.method, path[len(up.prefix):])
        ordering = key_of(body, rule.ordering_key)
        call = NewRequest(
            id=new_request_id(received_at), upstream=up.name,
            method=request.method, path=path,
            query=request.query_string, headers=kept_headers(request), body=body,
            received_at=received_at, endpoint=rule.name,
            ordering_key=None if ordering is None else f"{up.name}:{ordering}",
            expires_at=end_of_service_day(received_at) if rule.expires == END_OF_SERVICE_DAY
            else None,
        )
        try:
            await self.store.enqueue(call)
        except StoreError as exc:
            log.error("intake refused, store error: %s", exc,
                      extra={"upstream": call.upstream})
            return refuse(preset, 503, f"Tenang tidak dapat menyimpan permintaan / "
                          f"request not stored: {exc.reason}. Kirim ulang / please retry.")
        self.observer.accepted(call.upstream, call.endpoint, time.perf_counter() - started)
        if self.relay is not None:
            self.relay.wake(call.upstream)
        return web.Response(status=202, body=route.queued_body, headers={
            "Content-Type": "application/json", "X-Tenang-Request-Id": call.id,
            "Location": self.admin_base + call.id,
        })


def kept_headers(request: web.Request) -> Headers:
    listed = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return tuple(
        (name, header_text(value)) for name, value in request.headers.items()
        if name.lower() not in DROPPED_HEADERS and name.lower() not in listed
    )


def header_text(value: str) -> str:
    """A header value as storable text. Bytes that are not UTF-8 (an old SIMRS sending
    Latin-1, say "Jos\xe9") reach us as surrogate escapes, which cannot be stored; they
    are read as Latin-1, HTTP's historical meaning for such bytes (RFC 9110 obs-text)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value


def refuse(preset: str | None, status: int, message: str) -> web.Response:
    return web.Response(status=status, body=envelope(preset, status, message),
                        content_type="application/json")


def too_large(preset: str, limit: int) -> web.Response:
    return refuse(preset, 413, f"Isi permintaan terlalu besar / request body larger than "
                  f"{limit} bytes (server.max_body_bytes); not stored")


def create_gateway_app(gateway: Gateway) -> web.Application:
    app = web.Application(client_max_size=gateway.config.server.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    return app
