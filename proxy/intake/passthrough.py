"""Passthrough reads (Peserta, Rujukan, referensi, iCare): forwarded live with the SIMRS's
own signed headers, so BPJS's answer is relayed byte for byte and decrypts as usual.

While the breaker is open, or when BPJS fails (timeout, reset, 5xx, HTML), the SIMRS
gets a BPJS-shaped failure at once instead of hanging; routes with ``cache_ttl_s`` get
the last good answer instead, re-encrypted for the caller's timestamp and marked stale.
Reads are not stored: there is nothing to replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from proxy.bpjs import envelope as bpjs_envelope
from proxy.bpjs.presets import Endpoint
from proxy.bpjs.results import readable
from proxy.bpjs.signature import CONS_ID_HEADER, TIMESTAMP_HEADER, USER_KEY_HEADER
from proxy.config import UpstreamConfig
from proxy.delivery.upstream import Reply, cons_id_for, exchange, upstream_url
from proxy.intake.answers import envelope
from proxy.intake.headers import forwarded, live_headers
from proxy.intake.read_cache import Cached, ReadCache, for_caller
from proxy.lifecycle import Verdict
from proxy.observe.observer import NULL_OBSERVER, Observer
from proxy.policies.breaker import AsyncBreaker
from proxy.policies.classify import attribute, classify_error, classify_response

log = logging.getLogger("tenang.passthrough")

FALLBACK_HEADER = "X-Tenang-Fallback"
CACHE_HEADER = "X-Tenang-Cache"
# Who answered a read, as ``tenang_passthrough_reads_total{answer}`` reports it.
BY_UPSTREAM, BY_STALE_CACHE, BY_FALLBACK = "upstream", "stale-cache", "fallback"


class Passthrough:
    def __init__(self, session: Callable[[], aiohttp.ClientSession],
                 breakers: dict[str, AsyncBreaker],
                 clock: Callable[[], float] = time.time,
                 observer: Observer = NULL_OBSERVER) -> None:
        self.session = session
        self.breakers = breakers
        self.clock = clock
        self.observer = observer
        self.cache = ReadCache()

    async def handle(self, request: web.Request, up: UpstreamConfig, rule: Endpoint,
                     path: str, query: str, body: bytes) -> web.Response:
        """``path`` and ``query`` as the gateway canonicalised them, still encoded."""
        started = time.perf_counter()
        response = await self._answer(request, up, rule, path, query, body)
        by = BY_UPSTREAM if FALLBACK_HEADER not in response.headers else \
            BY_STALE_CACHE if CACHE_HEADER in response.headers else BY_FALLBACK
        self.observer.read(up.name, rule.name, by, time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request, up: UpstreamConfig, rule: Endpoint,
                      path: str, query: str, body: bytes) -> web.Response:
        key = (up.name, request.method.upper(), path.lower(), query,
               body.decode("utf-8", "replace") if body else "")
        breaker = self.breakers[up.name]
        permit = breaker.try_acquire()
        if permit is None:
            return self._fallback(request, up, rule, key, "circuit-open",
                                  "BPJS sedang tidak dapat dihubungi (circuit terbuka); coba "
                                  "lagi sebentar / BPJS is unreachable (circuit open); "
                                  "try again shortly")
        headers = live_headers(forwarded(request, up.forwarded))
        own_user_key = USER_KEY_HEADER in headers
        if up.user_key and not own_user_key:  # user_key_env fills in, as for replays
            headers[USER_KEY_HEADER] = up.user_key
        timeout_s = min(up.timeout_s, rule.deadline_ms / 1000)
        try:
            reply = await exchange(self.session(), request.method,
                                   upstream_url(up, path, query), headers,
                                   body or None, timeout_s)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            outcome = classify_error(exc)
            breaker.record(permit, failure=outcome.trips_breaker)
            return self._fallback(request, up, rule, key, "upstream-error",
                                  f"BPJS tidak menjawab / BPJS did not answer: "
                                  f"{outcome.reason}")
        outcome = classify_response(reply.status, reply.headers, reply.body,
                                    envelope_required=up.is_bpjs, now=self.clock())
        # The caller's own user_key refused is its own answer, relayed as it is; it says
        # nothing about BPJS's health and must not close the circuit on everyone else.
        env = bpjs_envelope.parse(reply.body)
        outcome = attribute(outcome, env.message if env else "", own_user_key=own_user_key,
                            refused_before=False, accepted_since=False)
        breaker.record(permit, failure=outcome.trips_breaker)
        if outcome.verdict is Verdict.TRANSIENT and bpjs_envelope.parse(reply.body) is None:
            return self._fallback(request, up, rule, key, "upstream-error",
                                  f"BPJS gagal / BPJS failed: {outcome.reason}")
        if outcome.verdict is Verdict.SUCCESS and rule.cache_ttl_s:
            self._remember(key, up, rule, reply, headers.get(CONS_ID_HEADER, ""))
        return web.Response(status=reply.status, body=reply.body, headers={
            "Content-Type": reply.headers.get("Content-Type", "application/json")})

    def _remember(self, key: tuple[str, ...], up: UpstreamConfig, rule: Endpoint,
                  reply: Reply, cons_id: str) -> None:
        plain = readable(reply.body, encrypted=rule.encrypted, cons_id=cons_id_for(up, cons_id),
                         secret=up.secret, timestamp=reply.timestamp)
        env = bpjs_envelope.parse(plain.body)
        if env is not None and plain.decrypt_error is None:
            self.cache.put(key, Cached(env, rule.encrypted, self.clock()))

    def _fallback(self, request: web.Request, up: UpstreamConfig, rule: Endpoint,
                  key: tuple[str, ...], why: str, message: str) -> web.Response:
        now = self.clock()
        cached = self.cache.get(key, rule.cache_ttl_s, now) if rule.cache_ttl_s else None
        if cached is not None:
            cons_id = cons_id_for(up, request.headers.get(CONS_ID_HEADER))
            served = for_caller(cached, cons_id, up.secret,
                                request.headers.get(TIMESTAMP_HEADER, ""))
            if served is not None:
                age = int(now - cached.stored_at)
                return web.Response(status=200, body=served, headers={
                    "Content-Type": "application/json", CACHE_HEADER: f"stale; age={age}",
                    FALLBACK_HEADER: why})
        log.info("passthrough %s %s answered by Tenang: %s", request.method, request.path,
                 why, extra={"upstream": up.name})
        return web.Response(status=up.fail_status, body=envelope(up.preset, 503, message),
                            headers={"Content-Type": "application/json",
                                     FALLBACK_HEADER: why})
