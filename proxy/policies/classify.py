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
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from proxy.calls import Outcome, Verdict

SUCCESS_CODES = frozenset({"200", "1"})
DUPLICATE_CODES = frozenset({"208"})
ENVELOPE_KEYS = ("metadata", "metaData", "Metadata", "MetaData")


def envelope(body: bytes) -> tuple[str, str] | None:
    """(code, message) of a BPJS envelope, or None when ``body`` is not one."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    meta = next((doc[k] for k in ENVELOPE_KEYS if isinstance(doc.get(k), dict)), None)
    if meta is None:
        return None
    code = meta.get("code", meta.get("Code"))
    if code is None or isinstance(code, bool | dict | list):
        return None
    return str(code).strip(), str(meta.get("message", meta.get("Message", "")))


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
                      envelope_required: bool, now: float) -> Outcome:
    wait = retry_after_s(headers, now)
    if status >= 500 or status == 408:
        return Outcome(Verdict.TRANSIENT, f"HTTP {status} from upstream", trips_breaker=True,
                       retry_after_s=wait)
    if status == 429:
        return Outcome(Verdict.TRANSIENT, "HTTP 429 (upstream asks to slow down)",
                       retry_after_s=wait)
    env = envelope(body)
    if env is not None:
        return _classify_envelope(status, *env, wait)
    if 200 <= status < 300:
        if envelope_required:
            kind = "empty" if not body.strip() else "non-JSON"
            return Outcome(Verdict.TRANSIENT, f"HTTP {status} with an {kind} body, not a BPJS "
                           "envelope", trips_breaker=True, retry_after_s=wait)
        return Outcome(Verdict.SUCCESS, f"HTTP {status}")
    return Outcome(Verdict.PERMANENT, f"HTTP {status} from upstream (no BPJS envelope)")


def _classify_envelope(status: int, code: str, message: str, wait: float | None) -> Outcome:
    said = f"code {code}: {message}".rstrip(": ")
    if code in SUCCESS_CODES:
        return Outcome(Verdict.SUCCESS, said)
    if code in DUPLICATE_CODES:
        return Outcome(Verdict.DUPLICATE, f"already applied upstream ({said})")
    if code.isdigit() and int(code) >= 500:
        return Outcome(Verdict.TRANSIENT, f"HTTP {status}, {said}", trips_breaker=True,
                       retry_after_s=wait)
    return Outcome(Verdict.PERMANENT, f"rejected by upstream ({said})")


def classify_error(exc: BaseException) -> Outcome:
    """A send that produced no HTTP answer."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Outcome(Verdict.TRANSIENT, "timed out waiting for upstream", trips_breaker=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome(Verdict.TRANSIENT, f"cannot connect to upstream: {exc.os_error}",
                       trips_breaker=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return Outcome(Verdict.TRANSIENT, f"connection lost: {exc}", trips_breaker=True)
    return Outcome(Verdict.TRANSIENT, f"{type(exc).__name__}: {exc}", trips_breaker=True)
