"""Result lookup for the SIMRS: ``GET /_tenang/requests/{id}`` on the SIMRS-facing port.

The answer is a BPJS-shaped envelope in the upstream's own spelling, so the client
library that made the call can parse the lookup too, plus a ``tenang`` key with the
request's state:

- not final yet (pending, in flight, held): HTTP 202, code 202, a message naming the
  status and the reason;
- succeeded, or failed with a BPJS answer: HTTP 200 and that answer as stored (the relay
  stores it decrypted). A caller that signs the lookup like a BPJS call (``X-cons-id``,
  ``X-timestamp``, ``X-signature`` for the upstream's cons_id and secret) gets an
  encrypted endpoint's ``response`` encrypted for its own ``X-timestamp``, exactly as
  BPJS would have answered it; an unsigned caller gets it plain; a wrong signature gets
  401. Without a secret configured Tenang can neither check nor encrypt: signature
  headers are then ignored and the answer is given as stored;
- otherwise final (dead, cancelled, or no BPJS answer to show): HTTP 200 with Tenang's
  own envelope naming the status and reason.

Who may ask: with ``server.results_token_env`` set, only callers sending ``Authorization:
Bearer <token>``; without, only loopback peers. Stored headers (user_key) are never
echoed, and no traceback reaches the caller.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.bpjs import envelope as bpjs_envelope
from proxy.bpjs.crypto import encrypt_response
from proxy.bpjs.presets import resolve
from proxy.bpjs.signature import CONS_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from proxy.config import Config, UpstreamConfig
from proxy.delivery.upstream import stored_cons_id
from proxy.intake.answers import envelope
from proxy.lifecycle import FINAL, Status
from proxy.shapes import TenangState, iso_utc
from proxy.store.errors import StoreError
from proxy.store.protocols import Intake
from proxy.store.records import StoredAttempt, StoredRequest
from proxy.tokens import bearer_matches

log = logging.getLogger("tenang.results")

RESULTS_ROUTE = "/_tenang/requests/{id}"

# (Indonesian, English) for a request that is not final yet.
_WAITING = {
    Status.PENDING: ("menunggu dikirim ke BPJS", "waiting to be delivered to BPJS"),
    Status.IN_FLIGHT: ("sedang dikirim ke BPJS", "being delivered to BPJS right now"),
    Status.HELD: ("ditahan, menunggu permintaan sebelumnya atau petugas",
                  "held, waiting for an earlier request or an operator"),
}
# Final requests without a BPJS answer to show: Tenang's code and words. 201 is BPJS's
# own "Gagal" for a rejection; 500 and 410 say "not delivered" and "withdrawn".
_ENDED = {
    Status.SUCCEEDED: (200, "terkirim ke BPJS", "delivered to BPJS"),
    Status.FAILED: (201, "ditolak", "rejected"),
    Status.DEAD: (500, "tidak terkirim, Tenang berhenti mencoba",
                  "not delivered, Tenang gave up"),
    Status.CANCELLED: (410, "dibatalkan", "cancelled"),
}
# The stored BPJS answer is the result for these; for dead and cancelled requests the
# last answer (if any) is a stale step on the way, not the outcome.
_ANSWERED = frozenset({Status.SUCCEEDED, Status.FAILED})


class BadSignature(Exception):
    """The lookup carries an X-signature that does not check out."""


@dataclass(frozen=True, slots=True)
class CallerKey:
    """What a verified signed lookup's ``response`` is encrypted with."""

    cons_id: str
    secret: str
    timestamp: str


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address is this host (IPv4-mapped IPv6 included)."""
    if not remote:
        return False
    try:
        addr = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _doc(preset: str | None, code: int, message: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(envelope(preset, code, message))
    return doc


def _answer(doc: dict[str, Any], status: int, **headers: str) -> web.Response:
    return web.Response(status=status, body=json.dumps(doc, ensure_ascii=False).encode(),
                        content_type="application/json",
                        # Results may carry patient data: no shared cache keeps them.
                        headers={"Cache-Control": "no-store", **headers})


def _refusal(preset: str | None, status: int, message: str, **headers: str) -> web.Response:
    return _answer(_doc(preset, status, message), status, **headers)


def tenang_state(r: StoredRequest) -> TenangState:
    """The ``tenang`` key: the request's state as Tenang holds it (no headers, no body)."""
    return {"id": r.id, "upstream": r.upstream, "endpoint": r.endpoint,
            "status": r.status.value, "reason": r.reason, "attempts": r.attempts,
            "received_at": iso_utc(r.received_at), "updated_at": iso_utc(r.updated_at)}


def _because(r: StoredRequest) -> str:
    return f" ({r.status.value}{': ' + r.reason if r.reason else ''})"


class ResultsApi:
    def __init__(self, config: Config, store: Intake) -> None:
        self.token = config.server.results_token
        self.upstreams = {u.name: u for u in config.upstreams}
        self.store = store

    async def handle(self, request: web.Request) -> web.Response:
        """Every outcome, errors included, is an envelope; never a traceback."""
        try:
            return await self._lookup(request)
        except StoreError as exc:
            log.error("result lookup failed, store error: %s", exc)
            return _refusal(None, 503, "Tenang tidak dapat membaca penyimpanan / store "
                            f"unavailable: {exc.reason}. Coba lagi / please retry.")
        except Exception:
            log.exception("result lookup failed unexpectedly for %s", request.path)
            return _refusal(None, 500, "Kesalahan internal Tenang / internal Tenang error")

    def _refuse_caller(self, request: web.Request) -> web.Response | None:
        if self.token is not None:
            if bearer_matches(request.headers.get("Authorization"), self.token):
                return None
            return _refusal(None, 401, "Token salah atau tidak ada / missing or wrong "
                            "token (Authorization: Bearer ...)",
                            **{"WWW-Authenticate": 'Bearer realm="tenang-results"'})
        if is_loopback(request.remote):
            return None
        return _refusal(None, 403, "Hanya dari komputer ini / only loopback clients may "
                        "look results up unless server.results_token_env is configured")

    async def _lookup(self, request: web.Request) -> web.Response:
        refused = self._refuse_caller(request)
        if refused is not None:
            return refused
        request_id = request.match_info["id"]
        stored = await self.store.get(request_id)
        if stored is None:
            return _refusal(None, 404, "Permintaan tidak ditemukan / no request with id "
                            f"{request_id[:64]!r}")
        up = self.upstreams.get(stored.upstream)
        try:
            caller = caller_key(request, up, stored)
        except BadSignature as exc:
            return _refusal(up.preset if up else None, 401,
                            f"Signature tidak valid / invalid signature: {exc}")
        doc, status = self._document(stored, up, await self.store.attempts(stored.id), caller)
        doc["tenang"] = tenang_state(stored)
        return _answer(doc, status, **{"X-Tenang-Request-Id": stored.id})

    def _document(self, r: StoredRequest, up: UpstreamConfig | None,
                  attempts: list[StoredAttempt], caller: CallerKey | None
                  ) -> tuple[dict[str, Any], int]:
        preset = up.preset if up else None
        if r.status not in FINAL:
            words = _WAITING.get(r.status, (r.status.value, r.status.value))
            return _doc(preset, 202, f"Belum selesai: {words[0]} / not final yet: "
                        f"{words[1]}{_because(r)}"), 202
        last = attempts[-1].response_body if attempts else None
        env = bpjs_envelope.parse(last) if last and r.status in _ANSWERED else None
        if env is None:
            code, indonesian, english = _ENDED[r.status]
            return _doc(preset, code, f"Selesai: {indonesian} / final: {english}"
                        f"{_because(r)}"), 200
        doc = dict(env.doc)
        if caller is not None and up is not None and doc.get("response") is not None \
                and resolve(up.preset, up.overrides, r.method,
                            up.below_prefix(r.path)).encrypted:
            doc["response"] = encrypt_response(doc["response"], caller.cons_id,
                                               caller.secret, caller.timestamp)
        return doc, 200


def caller_key(request: web.Request, up: UpstreamConfig | None,
               stored: StoredRequest) -> CallerKey | None:
    """The key to encrypt for, when the lookup is signed and the upstream has a secret
    to check it with; None for unsigned lookups. Raises BadSignature."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is None or up is None or not up.secret:
        return None
    cons_id = stored_cons_id(up, stored)
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if request.headers.get(CONS_ID_HEADER, "").strip() != cons_id:
        raise BadSignature("X-cons-id is not this upstream's consumer id")
    if not timestamp or not verify(cons_id, up.secret, timestamp, signature.strip()):
        raise BadSignature("X-signature does not match X-cons-id and X-timestamp")
    return CallerKey(cons_id, up.secret, timestamp)


def add_results_route(app: web.Application, config: Config, store: Intake) -> None:
    """Register the lookup; call before the gateway's catch-all route."""
    app.router.add_get(RESULTS_ROUTE, ResultsApi(config, store).handle)
