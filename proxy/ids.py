"""Request ids: time-ordered (newest sorts last), so keyset pagination by id is by age."""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as in ULIDs
# Every pair of digits, so a 130-bit value is written with 13 look-ups (ids are minted on
# the intake hot path, where base64.b32encode's pure-Python loop was a measurable cost).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = range(120, -1, -10)
# Ids are unique, not secret: a fast non-cryptographic generator is enough.
_random = random.Random()


ID_LENGTH = 26


def is_request_id(text: str) -> bool:
    """Whether ``text`` has the shape of an id minted here (26 Crockford base32 digits)."""
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)


_last = 0  # the value of the id ``next_request_id`` minted last


def new_request_id(now: float | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    ms = int((time.time() if now is None else now) * 1000)
    return _encode((ms << 80) | _random.getrandbits(80))


def next_request_id(now: float) -> str:
    """A new request's id: like ``new_request_id(now)``, but never sorting before an id
    minted here earlier. Ids order requests with the same ordering key (Antrean task ids
    of one booking), so two requests in one millisecond, or on either side of the clock
    stepping back, must keep their arrival order (the ULID spec's monotonic ids)."""
    global _last
    _last = max((int(now * 1000) << 80) | _random.getrandbits(80), _last + 1)
    return _encode(_last)


def _encode(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _SHIFTS])
