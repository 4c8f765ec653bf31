"""Intake checks the SIMRS's own BPJS credentials the way BPJS does (issue 11.1), before
anything is stored, forwarded, or answered from the read cache.

Tenang re-signs every replay with the hospital's consumer secret, so a request it
accepts is sent to BPJS as the hospital. It must therefore only accept what the SIMRS
proves it may send: ``X-cons-id`` is the upstream's ``cons_id``, ``X-signature`` is
base64(HMAC-SHA256(secret, "consid&timestamp")), and ``X-timestamp`` is within
``max_skew_s`` of Tenang's clock (0: no time check). The signature covers neither the
method, the path nor the body (bpjs-reference.md §2.2): it proves knowledge of the
secret and freshness, nothing more; see README "Threat model".

Which upstreams are checked: every BPJS preset, and a ``generic`` upstream that has a
secret (it re-signs too). A generic upstream without one adds no credential of the
hospital's: its requests are forwarded as the SIMRS sent them, and only
``server.allow_from`` limits who may send. With ``unsigned_replays = true`` (no secret)
the signature cannot be verified: cons id and timestamp are still checked.

Kept cheap for thousands of requests per second: the expected signature of a recently
seen timestamp is remembered, so a SIMRS reusing its header set costs a dict lookup and
a constant-time compare. Neither the signature nor the secret is ever logged.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from proxy.bpjs.signature import (
    CONS_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_KEY_HEADER,
    sign,
)
from proxy.config import Config, UpstreamConfig
from proxy.observe.observer import NULL_OBSERVER, Observer

log = logging.getLogger("tenang.intake_auth")

# user_key as the SIMRS clients spell it (all forwarded; proxy/bpjs/presets.py).
USER_KEY_NAMES = (USER_KEY_HEADER, "user-key", "userkey", "x-user-key")
REMEMBERED_TIMESTAMPS = 256
LOG_EVERY_S = 10.0
_SHOWN_CHARS = 40


class Refusal(NamedTuple):
    status: int
    message: str
    reason: str  # short, for the log: missing-header, cons-id, signature, timestamp, user-key


def _missing(names: list[str]) -> Refusal:
    listed = ", ".join(names)
    return Refusal(401, f"Header {listed} wajib diisi / the {listed} header"
                   f"{'s are' if len(names) > 1 else ' is'} required (BPJS credentials of "
                   "the SIMRS)", "missing-header")


def _shown(value: str) -> str:
    return repr(value[:_SHOWN_CHARS] + ("..." if len(value) > _SHOWN_CHARS else ""))


@dataclass(slots=True)
class Identity:
    """The credentials one upstream's SIMRS must present."""

    cons_id: str  # "" (generic only): any X-cons-id the secret signs for
    secret: str | None  # None: unsigned replays, the signature cannot be verified
    max_skew_s: float
    user_key_needed: bool  # BPJS refuses calls without user_key; none to fill in
    # (X-cons-id, X-timestamp) -> (expected X-signature, timestamp as seconds)
    seen: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)


def identity_of(up: UpstreamConfig) -> Identity | None:
    """What intake checks for ``up`` (None: nothing, a generic upstream without secret)."""
    if not up.is_bpjs and not up.secret:
        return None
    return Identity(up.cons_id, up.secret, up.max_skew_s,
                    user_key_needed=up.is_bpjs and not up.user_key)


def _has_user_key(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in USER_KEY_NAMES)


class IntakeAuth:
    def __init__(self, upstreams: Iterable[UpstreamConfig],
                 clock: Callable[[], float] = time.time,
                 observer: Observer = NULL_OBSERVER) -> None:
        self.clock = clock
        self.observer = observer
        self._identities = {up.name: identity_of(up) for up in upstreams}
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def refusal(self, up: UpstreamConfig, headers: Mapping[str, str],
                client: str | None = None) -> Refusal | None:
        """Why this request may not go on (None: it may). ``headers`` case-insensitive."""
        who = self._identities.get(up.name)
        if who is None:
            return None
        refused = self._check(who, headers)
        if refused is not None:
            self.observer.refused(up.name, refused.reason)
            self._log(up.name, refused, client)
        return refused

    def _check(self, who: Identity, headers: Mapping[str, str]) -> Refusal | None:
        cons_id = headers.get(CONS_ID_HEADER, "")
        ts = headers.get(TIMESTAMP_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        refused = _presented(who, cons_id, ts, given)
        if refused is not None:
            return refused
        seen = who.seen.get((cons_id, ts))
        if seen is None:
            if not ts.isdigit() or len(ts) > 12:
                return Refusal(401, f"X-timestamp {_shown(ts)} tidak valid / must be whole "
                               "UTC seconds since 1970 (e.g. 1715912345)", "timestamp")
            if len(who.seen) >= REMEMBERED_TIMESTAMPS:
                who.seen.clear()
            expected = sign(cons_id, who.secret, ts) if who.secret else ""
            seen = who.seen[(cons_id, ts)] = (expected, int(ts))
        expected, seconds = seen
        # Both are ASCII here (_presented), as compare_digest needs for str.
        if who.secret and not hmac.compare_digest(expected, given):
            return Refusal(401, "X-signature tidak valid / X-signature does not match "
                           "X-cons-id and X-timestamp (wrong consumer secret?)", "signature")
        if who.max_skew_s:
            off = self.clock() - seconds
            if abs(off) > who.max_skew_s:
                return _stale(off, who.max_skew_s)
        if who.user_key_needed and not _has_user_key(headers):
            return Refusal(400, "Header user_key wajib diisi / the user_key header is "
                           "required: BPJS refuses calls without it and this service has "
                           "no user_key_env (an nginx in front drops it unless "
                           "underscores_in_headers is on)", "user-key")
        return None

    def _log(self, upstream: str, refused: Refusal, client: str | None) -> None:
        """At most one line per upstream and reason every LOG_EVERY_S: a flood of bad
        requests must not flood the log (the count says how many were refused)."""
        now = time.monotonic()
        key = (upstream, refused.reason)
        last, count = self._logged.get(key, (0.0, 0))
        if last and now - last < LOG_EVERY_S:
            self._logged[key] = (last, count + 1)
            return
        self._logged[key] = (now, 0)
        more = f" ({count} more since the last report)" if count else ""
        log.warning("intake refused a request from %s: %s (%s)%s", client or "?",
                    refused.reason, refused.status, more, extra={"upstream": upstream})


def _presented(who: Identity, cons_id: str, ts: str, given: str) -> Refusal | None:
    """The three headers are there, are text, and name this upstream's consumer."""
    if not (cons_id and ts and given):
        return _missing([name for name, value in ((CONS_ID_HEADER, cons_id),
                                                  (TIMESTAMP_HEADER, ts),
                                                  (SIGNATURE_HEADER, given)) if not value])
    if not (cons_id.isascii() and ts.isascii() and given.isascii()):
        # Header bytes that were not UTF-8 arrive as surrogate escapes; they can be
        # neither signed nor compared ('²' also passes str.isdigit, not int()).
        return Refusal(401, "X-cons-id, X-timestamp dan X-signature harus teks ASCII / "
                       "must be ASCII text", "signature")
    if who.cons_id and cons_id != who.cons_id:
        return Refusal(401, f"X-cons-id {_shown(cons_id)} tidak sesuai / is not the "
                       "consumer id configured for this service", "cons-id")
    return None


def _stale(off: float, limit: float) -> Refusal:
    return Refusal(401, f"X-timestamp kedaluwarsa atau di masa depan / X-timestamp is "
                   f"{abs(off):.0f} s {'old' if off > 0 else 'in the future'} (limit "
                   f"{limit:g} s, max_skew_s); periksa jam SIMRS (NTP) / check the SIMRS "
                   "clock", "timestamp")


def unsigned_warnings(config: Config) -> Iterator[str]:
    """What to tell ops at start about upstreams whose SIMRS signature is not verified."""
    for up in config.upstreams:
        if up.is_bpjs and up.unsigned_replays:
            yield (f"upstream {up.name}: unsigned_replays = true, no consumer secret. Intake "
                   "CANNOT verify the SIMRS's X-signature: it checks X-cons-id and "
                   "X-timestamp only, so anyone who can reach the SIMRS port and knows the "
                   "cons id can queue requests (limit it with server.allow_from). Replays go "
                   "out with the SIMRS's original headers and no X-signature, which BPJS "
                   "refuses once their X-timestamp is stale; encrypted answers cannot be "
                   "stored readable. Set secret_env to re-sign.")
        elif not up.is_bpjs and not up.secret:
            yield (f"upstream {up.name}: generic upstream without a secret: intake checks no "
                   "credentials and forwards requests as the SIMRS sent them (limit who may "
                   "send with server.allow_from)")
