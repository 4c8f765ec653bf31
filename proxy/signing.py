"""The one signature on what Tenang POSTs to others' servers: outcome callbacks to the
SIMRS (``proxy.delivery.callback_sender``) and webhook notifications
(``proxy.observe.notify_channels``).

    X-Tenang-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The time is signed with the body, so a captured request cannot be replayed once it is
older than the receiver's tolerance. ``verify`` is what a receiver does (the README
shows the same in a dozen lines for receivers without Tenang installed). Not BPJS's
``X-signature`` (``proxy.bpjs.signature``), which Tenang checks and makes for BPJS.

Imports nothing from Tenang: any sender may use it.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Tenang-Signature"
# How far a receiver lets the signed time be from its own clock (either way: a sender's
# clock may be ahead). Five minutes, as Stripe and Slack use for the same scheme.
TOLERANCE_S = 300.0


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: float) -> str:
    """The ``X-Tenang-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds,
    whole seconds are signed)."""
    t = int(timestamp)
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(secret: str, header: str, body: bytes, now: float,
           tolerance_s: float = TOLERANCE_S) -> bool:
    """Whether ``header`` signs ``body`` (the raw bytes received) with ``secret`` at a
    time within ``tolerance_s`` of ``now``. Never raises: a malformed header is False."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    t, given = fields.get("t", ""), fields.get("v1", "")
    # isascii: str.isdigit() also accepts digits int() refuses, such as "²".
    if not (t.isascii() and t.isdigit()) or abs(now - int(t)) > tolerance_s:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII text, and a header may hold any.
    return hmac.compare_digest(_mac(secret, int(t), body).encode(),
                               given.encode("utf-8", "replace"))
