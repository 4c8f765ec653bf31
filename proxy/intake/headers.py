"""The SIMRS's request headers: the ones its upstream gets, what of them is stored for
replay, and what goes out on a live send.

Only the upstream's allowlist (``UpstreamConfig.forwarded``: the preset's headers plus
``forward_headers``) is kept; a SIMRS's Cookie, X-Api-Key or X-Forwarded-Host never
leaves Tenang and is never stored. One pass over the request's headers picks them;
storing and live sending then work on that short list.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from proxy.store.records import Headers

# Never stored: X-signature is a credential bound to the SIMRS's own timestamp.
NOT_STORED = "x-signature"

Forwarded = list[tuple[str, str]]


def forwarded(request: web.Request, allow: frozenset[str]) -> Forwarded:
    """The headers named in ``allow`` (lower-case), as sent, minus any the Connection
    header declares hop-by-hop (RFC 9110 §7.6.1)."""
    connection = request.headers.get("Connection")
    if connection is not None and "," not in connection and \
            connection.strip().lower() in ("close", "keep-alive"):
        connection = None  # the usual values name no other header
    kept = [(name, value) for name, value in request.headers.items()
            if name.lower() in allow]
    if connection is None:
        return kept
    listed = {t.strip().lower() for t in connection.split(",")}
    return [(name, value) for name, value in kept if name.lower() not in listed]


def stored_headers(sent: Forwarded) -> Headers:
    return tuple((name, header_text(value)) for name, value in sent
                 if name.lower() != NOT_STORED)


def live_headers(sent: Forwarded) -> CIMultiDict[str]:
    """The SIMRS's own headers, signature included, for a send made while it waits
    (kept in memory only: BPJS then encrypts its answer for the SIMRS's timestamp)."""
    return CIMultiDict(sent)


def header_text(value: str) -> str:
    """A header value as storable text. Bytes that are not UTF-8 (an old SIMRS sending
    Latin-1, say "Jos\\xe9") reach us as surrogate escapes, which cannot be stored; they
    are read as Latin-1, HTTP's historical meaning for such bytes (RFC 9110 obs-text)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value
