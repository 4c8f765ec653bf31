"""The SIMRS's request headers: what is stored for replay, and what goes out live."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from proxy.store.base import Headers

# Hop-by-hop headers (RFC 9110 §7.6.1) and values the HTTP client recomputes.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
# Never stored: X-signature is a credential bound to the SIMRS's own timestamp.
DROPPED_HEADERS = HOP_BY_HOP | {"x-signature"}


def _listed(request: web.Request) -> set[str]:
    return {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}


def kept_headers(request: web.Request) -> Headers:
    listed = _listed(request)
    return tuple(
        (name, header_text(value)) for name, value in request.headers.items()
        if name.lower() not in DROPPED_HEADERS and name.lower() not in listed
    )


def live_headers(request: web.Request) -> CIMultiDict[str]:
    """The SIMRS's own headers, signature included, for a send made while it waits
    (kept in memory only: BPJS then encrypts its answer for the SIMRS's timestamp)."""
    listed = _listed(request)
    return CIMultiDict((name, value) for name, value in request.headers.items()
                       if name.lower() not in HOP_BY_HOP and name.lower() not in listed)


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
