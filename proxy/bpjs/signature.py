"""BPJS request signing (bpjs-reference.md §2.2).

The signature covers only ``consid&timestamp``, so every replay needs a fresh timestamp
and therefore a fresh signature: the SIMRS's own header expires with its timestamp.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

SIGNATURE_HEADER = "X-signature"
TIMESTAMP_HEADER = "X-timestamp"
CONS_ID_HEADER = "X-cons-id"
USER_KEY_HEADER = "user_key"


def hmac_b64(key: str, message: str) -> str:
    """Base64 (standard alphabet, padded) of HMAC-SHA256 over UTF-8 text."""
    mac = hmac.new(key.encode(), message.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


@functools.lru_cache(maxsize=64)  # one timestamp a second serves every send in it
def sign(cons_id: str, secret: str, timestamp: str) -> str:
    """The ``X-signature`` value: HMAC of ``cons_id&timestamp`` keyed with the secret."""
    return hmac_b64(secret, f"{cons_id}&{timestamp}")


def timestamp(now: float) -> str:
    """BPJS timestamps are whole UTC seconds since the epoch, as a decimal string."""
    return str(int(now))


def signed_headers(cons_id: str, secret: str, now: float) -> dict[str, str]:
    ts = timestamp(now)
    return {CONS_ID_HEADER: cons_id, TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(cons_id, secret, ts)}


def verify(cons_id: str, secret: str, ts: str, signature: str) -> bool:
    """Whether ``signature`` is the one for ``cons_id&ts``. Header bytes that were not
    UTF-8 arrive as surrogate escapes: such a value matches nothing (and must not raise,
    as encoding it or comparing non-ASCII text would)."""
    if not (ts.isascii() and signature.isascii() and cons_id.isascii()):
        return False
    return hmac.compare_digest(sign(cons_id, secret, ts).encode(), signature.encode())
