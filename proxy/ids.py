"""Request ids: time-ordered (newest sorts last), so keyset pagination by id is by age."""

from __future__ import annotations

import base64
import os
import time

# RFC 4648 base32 digits mapped onto Crockford's alphabet, as ULIDs use.
_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                             b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def new_request_id(now: float | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    ms = int((time.time() if now is None else now) * 1000)
    raw = (b"\0\0\0\0" + ms.to_bytes(6, "big") + os.urandom(10))  # 20 bytes = 32 digits
    return base64.b32encode(raw)[-26:].translate(_CROCKFORD).decode()
