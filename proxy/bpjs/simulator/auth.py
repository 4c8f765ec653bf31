"""The header check every BPJS path goes through (reference §2).

BPJS's real answer to a bad signature is unconfirmed (§11); the simulator answers HTTP 401
with the service's own envelope and code 401, so a proxy can classify it as a credential
problem rather than an outage. aiohttp's header map is case-insensitive, which gives the
case-insensitive header names BPJS clients rely on.
"""

from __future__ import annotations

from collections.abc import Mapping

from proxy.bpjs.signature import (
    CONS_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_KEY_HEADER,
    verify,
)
from proxy.bpjs.simulator.answers import Answer, Caller
from proxy.bpjs.simulator.settings import Settings, SimConfig


def _unauthorized(message: str, outcome: str) -> Answer:
    return Answer(401, f"Unauthorized! {message}", None, False, outcome, http_status=401)


def authenticate(headers: Mapping[str, str], config: SimConfig, settings: Settings,
                 now: float) -> Caller | Answer:
    """The verified caller, or the 401 answer to send instead."""
    cons_id = headers.get(CONS_ID_HEADER, "")
    ts = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not (cons_id and ts and signature):
        return _unauthorized("Header X-cons-id, X-timestamp dan X-signature wajib diisi",
                             "bad-signature")
    if cons_id != config.cons_id:
        return _unauthorized(f"Consumer ID {cons_id} tidak terdaftar", "bad-signature")
    if not verify(cons_id, config.secret, ts, signature):
        return _unauthorized("Signature tidak valid", "bad-signature")
    if not ts.isdigit():
        return _unauthorized(f"X-timestamp {ts!r} tidak valid", "bad-signature")
    skew = settings.max_skew_s
    if skew is not None and abs(now - int(ts)) > skew:
        return _unauthorized(
            f"X-timestamp {ts} kedaluwarsa atau di masa depan "
            f"(selisih {abs(now - int(ts)):.0f} detik, batas {skew:g} detik)",
            "stale-timestamp")
    user_key = headers.get(USER_KEY_HEADER, "")
    if config.require_user_key and not user_key:
        return _unauthorized("user_key tidak ditemukan", "bad-user-key")
    if user_key in config.refused_user_keys:
        return _unauthorized("user_key tidak valid", "bad-user-key")
    return Caller(cons_id, ts)
