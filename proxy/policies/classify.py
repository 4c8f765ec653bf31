"""Outcome classification: what one upstream answer means for the request.

BPJS reports business errors inside HTTP 200 envelopes, so the envelope decides first
(ARCHITECTURE.md §2): success codes 200/"200"/1, 208 duplicates count as already
applied, other well-formed codes are permanent rejections that prove the upstream is up
(they never trip the breaker). Network errors, timeouts, 5xx and, for BPJS services,
HTML/empty/non-JSON bodies are transient.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
from collections.abc import Mapping
from dataclasses import replace

import aiohttp

from proxy.bpjs import envelope as bpjs_envelope
from proxy.lifecycle import Outcome, Verdict

SUCCESS_CODES = frozenset({"200", "1"})
DUPLICATE_CODES = frozenset({"208"})
# Credentials refused: every request would fail alike, so the breaker should open
# rather than each request burning its attempts (bpjs-reference.md §5.2).
AUTH_CODES = frozenset({"401", "403"})
THROTTLED_CODE = "412"  # iCare: "... HH:MM:SS" says how long to wait
_WAIT = re.compile(r"\b(\d{1,2}):(\d{2}):(\d{2})\b")


def envelope(body: bytes) -> tuple[str, str] | None:
    """(code, message) of a BPJS envelope, or None when ``body`` is not one."""
    env = bpjs_envelope.parse(body)
    return None if env is None else (env.code, env.message)


def retry_after_s(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds from ``now`` given by a Retry-After header (delta-seconds or HTTP date)."""
    raw = headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def classify_response(status: int, headers: Mapping[str, str], body: bytes, *,
                      envelope_required: bool, now: float,
                      retryable_messages: tuple[str, ...] = ()) -> Outcome:
    wait = retry_after_s(headers, now)
    env = envelope(body)
    if status in (401, 403) or (env is not None and env[0] in AUTH_CODES):
        said = f": {env[1]}" if env is not None and env[1] else ""
        return Outcome(Verdict.TRANSIENT, f"authentication refused by upstream (HTTP {status}"
                       f"{said}); check cons_id, secret and user_key", trips_breaker=True,
                       retry_after_s=wait, auth_refused=True)
    if status >= 500 or status == 408:
        return Outcome(Verdict.TRANSIENT, f"HTTP {status} from upstream", trips_breaker=True,
                       retry_after_s=wait)
    if status == 429:
        return Outcome(Verdict.TRANSIENT, "HTTP 429 (upstream asks to slow down)",
                       retry_after_s=wait)
    if env is not None:
        return _classify_envelope(status, *env, wait, retryable_messages)
    if 200 <= status < 300:
        if envelope_required:
            kind = "empty" if not body.strip() else "non-JSON"
            return Outcome(Verdict.TRANSIENT, f"HTTP {status} with an {kind} body, not a BPJS "
                           "envelope", trips_breaker=True, retry_after_s=wait)
        return Outcome(Verdict.SUCCESS, f"HTTP {status}")
    return Outcome(Verdict.PERMANENT, f"HTTP {status} from upstream (no BPJS envelope)")


def _classify_envelope(status: int, code: str, message: str, wait: float | None,
                       retryable_messages: tuple[str, ...]) -> Outcome:
    said = f"code {code}: {message}".rstrip(": ")
    if code in SUCCESS_CODES:
        return Outcome(Verdict.SUCCESS, said)
    if code in DUPLICATE_CODES:
        return Outcome(Verdict.DUPLICATE, f"already applied upstream ({said})")
    if code == THROTTLED_CODE and (hms := _WAIT.search(message)):
        h, m, sec = (int(g) for g in hms.groups())
        return Outcome(Verdict.TRANSIENT, f"throttled by upstream ({said})",
                       retry_after_s=float(h * 3600 + m * 60 + sec))
    if any(re.search(p, message, re.IGNORECASE) for p in retryable_messages):
        return Outcome(Verdict.TRANSIENT, f"waiting for an earlier request to land ({said})",
                       retry_after_s=wait)
    if code.isdigit() and int(code) >= 500:
        return Outcome(Verdict.TRANSIENT, f"HTTP {status}, {said}", trips_breaker=True,
                       retry_after_s=wait)
    return Outcome(Verdict.PERMANENT, f"rejected by upstream ({said})")


# BPJS names the user_key when that is what it refuses ("user_key tidak ditemukan").
_USER_KEY = re.compile(r"user.?key", re.IGNORECASE)


def attribute(outcome: Outcome, said: str, *, own_user_key: bool, refused_before: bool,
              accepted_since: bool) -> Outcome:
    """Whose fault a credential refusal is (``said``: the upstream's message). The
    consumer id and secret are the upstream's (every request carries the same), so a
    refusal is upstream-wide and trips the breaker, unless it is shown to be this
    request's own: it names the user_key and that key came with the request
    (``own_user_key``: not the configured one), or the request was refused before and
    the upstream has accepted other requests since."""
    if not outcome.auth_refused:
        return outcome
    if own_user_key and _USER_KEY.search(said):
        why = "it names the user_key this request brought"
    elif refused_before and accepted_since:
        why = "refused again while the upstream accepts other requests"
    else:
        return outcome
    return replace(outcome, trips_breaker=False, own_fault=True,
                   reason=f"{outcome.reason}; this request's own refusal ({why})")


def classify_error(exc: BaseException) -> Outcome:
    """A send that produced no HTTP answer."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Outcome(Verdict.TRANSIENT, "timed out waiting for upstream", trips_breaker=True,
                       ambiguous=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome(Verdict.TRANSIENT, f"cannot connect to upstream: {exc.os_error}",
                       trips_breaker=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return Outcome(Verdict.TRANSIENT, f"connection lost: {exc}", trips_breaker=True,
                       ambiguous=True)
    return Outcome(Verdict.TRANSIENT, f"{type(exc).__name__}: {exc}", trips_breaker=True,
                   ambiguous=True)
