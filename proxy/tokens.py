"""Secrets that arrive in headers and cookies, compared one way everywhere: in constant
time, a missing value never matching, and bytes that were not UTF-8 unequal instead of
an error.

The admin API and UI (ops, admin_ui), ``/metrics`` (observe) and the SIMRS result lookup
(intake) all check tokens; the check lives here, outside those rooms, so none of them
imports another room for it (docs/ARCHITECTURE.md, "What each room may import").
"""

from __future__ import annotations

import hmac


def header_bytes(text: str) -> bytes:
    """A header or cookie value as bytes. Bytes that were not UTF-8 arrive as surrogate
    escapes; they must compare unequal (and hash), not raise."""
    return text.encode("utf-8", "surrogatepass")


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two optional secrets (None never matches)."""
    return (a is not None and b is not None
            and hmac.compare_digest(header_bytes(a), header_bytes(b)))


def bearer_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an Authorization header value carries ``token`` as its bearer token: the
    scheme in any case (RFC 7235), the token compared in constant time. No token
    configured, no header or non-UTF-8 bytes never match, and never raise."""
    if not token or authorization is None:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and same(given.strip(), token)
