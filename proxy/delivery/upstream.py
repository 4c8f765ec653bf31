"""Sending one stored request to its configured upstream over a shared ClientSession."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from proxy.bpjs import signature
from proxy.config import UpstreamConfig
from proxy.http_timeouts import exact_timeout
from proxy.store.records import StoredRequest

# Responses are kept for ops and auditors, but a runaway body must not fill the disk.
MAX_STORED_RESPONSE_BYTES = 64 * 1024
# The classifier needs the whole envelope, so far more is read than is stored.
MAX_READ_RESPONSE_BYTES = 8 * 1024 * 1024

# Set by the HTTP client itself for the upstream connection.
_RECOMPUTED = frozenset({"host", "content-length"})
# Replaced on every attempt when the upstream re-signs (the SIMRS's expire).
_AUTH = frozenset(h.lower() for h in (signature.CONS_ID_HEADER, signature.TIMESTAMP_HEADER,
                                      signature.SIGNATURE_HEADER))


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    duration_s: float
    # The X-timestamp this attempt carried: BPJS encrypts its answer with it.
    timestamp: str | None = None


def target_url(upstream: UpstreamConfig, request: StoredRequest) -> str:
    return upstream_url(upstream, request.path, request.query)


def stored_header(request: StoredRequest, name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in request.headers if k.lower() == wanted), None)


def cons_id_for(upstream: UpstreamConfig, sent: str | None) -> str:
    """The consumer id a call is signed, and its answer encrypted, for: the upstream's
    configured one, else the one the SIMRS sent (an upstream that passes it through)."""
    return upstream.cons_id or sent or ""


def stored_cons_id(upstream: UpstreamConfig, request: StoredRequest) -> str:
    """``cons_id_for`` a stored request (its X-cons-id as the SIMRS sent it)."""
    return cons_id_for(upstream, stored_header(request, signature.CONS_ID_HEADER))


def outgoing_headers(upstream: UpstreamConfig, request: StoredRequest,
                     now: float) -> CIMultiDict[str]:
    """The stored headers, re-signed for ``now`` when the upstream has its secret. Only
    the upstream's allowlist goes out (rows stored before it existed hold more)."""
    skip = _RECOMPUTED | _AUTH if upstream.re_signs else _RECOMPUTED
    allow = upstream.forwarded
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers:
        if name.lower() in allow and name.lower() not in skip:
            headers.add(name, value)
    if upstream.secret:
        cons_id = stored_cons_id(upstream, request)
        headers.update(signature.signed_headers(cons_id, upstream.secret, now))
    if upstream.user_key and signature.USER_KEY_HEADER not in headers:
        headers[signature.USER_KEY_HEADER] = upstream.user_key
    return headers


# Where a path splits into segments: some servers in front of BPJS (IIS) split on '\\' too.
_SEGMENT_SEPARATORS = re.compile(r"[/\\]")
# Path and query are kept as the SIMRS sent them (still percent-encoded) and go out as
# they are. Only what cannot stand raw in a request-target is encoded on the way out:
# rows stored before raw queries were kept hold decoded text (spaces, '#', non-ASCII).
_RAW_UNSAFE = re.compile(r"[^!-~]|#")
_RAW_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")


def has_dot_segment(path: str) -> bool:
    """Whether a raw path has a '.' or '..' segment, percent-encoded ones ('%2e%2e', or
    behind an encoded '%2F') included: the upstream would resolve it and leave the
    target's base path, with Tenang's signature on the request."""
    if "." not in path and "%" not in path:
        return False
    return any(seg in (".", "..") for seg in _SEGMENT_SEPARATORS.split(unquote(path)))


@lru_cache(maxsize=64)
def _encoded_base(target: str) -> str:
    """The configured target in encoded form (IDNA host, quoted path), without the '/'
    the path below the prefix brings."""
    return str(URL(target)).rstrip("/")


def _wire_safe(text: str) -> str:
    if _RAW_UNSAFE.search(text) is None:
        return text
    return quote(text, safe=_RAW_SAFE, errors="surrogateescape")


def upstream_url(upstream: UpstreamConfig, path: str, query: str) -> str:
    """The upstream URL for a SIMRS path (prefix included): the configured target plus
    the path below the prefix, and the query, both as the SIMRS encoded them (``exchange``
    sends the URL without re-encoding). Only configured targets are ever contacted."""
    rest = upstream.below_prefix(path)
    if has_dot_segment(rest):
        raise ValueError(f"refusing to send {path!r}: '.' or '..' segment")
    rest = rest if rest.startswith("/") or not rest else "/" + rest
    url = _encoded_base(upstream.target) + _wire_safe(rest)
    url = f"{url}?{_wire_safe(query)}" if query else url
    if urlsplit(url).netloc != urlsplit(_encoded_base(upstream.target)).netloc:
        raise ValueError(f"refusing to send {path!r} outside {upstream.target}")
    return url


async def exchange(session: aiohttp.ClientSession, method: str, url: str,
                   headers: CIMultiDict[str], body: bytes | None, timeout_s: float) -> Reply:
    """One HTTP exchange. Raises aiohttp/timeout errors when no answer arrives.

    ``url`` is already encoded (``upstream_url``): parsed as plain text it would be
    requoted, and BPJS would not get the bytes the SIMRS sent (``%41`` would become
    ``A``)."""
    started = time.perf_counter()
    async with session.request(
        method, URL(url, encoded=True), headers=headers, data=body, allow_redirects=False,
        timeout=exact_timeout(timeout_s),
        skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
    ) as resp:
        data = await read_body(resp.content, MAX_READ_RESPONSE_BYTES)
        return Reply(resp.status, CIMultiDict(resp.headers), data,
                     time.perf_counter() - started, headers.get(signature.TIMESTAMP_HEADER))


async def send(session: aiohttp.ClientSession, upstream: UpstreamConfig,
               request: StoredRequest, now: float,
               live_headers: CIMultiDict[str] | None = None) -> Reply:
    """Send ``request`` once: re-signed for ``now``, or, on the live path, with the
    SIMRS's own signed headers (its answer is then encrypted for the SIMRS's timestamp)."""
    headers = live_headers if live_headers is not None else outgoing_headers(
        upstream, request, now)
    return await exchange(session, request.method,
                          upstream_url(upstream, request.path, request.query), headers,
                          request.body, upstream.timeout_s)


async def signed_read(session: aiohttp.ClientSession, upstream: UpstreamConfig,
                      like: StoredRequest, path_below_prefix: str, now: float) -> Reply:
    """A GET of our own (reconciliation), signed like ``like``'s replays would be."""
    headers = outgoing_headers(upstream, like, now)
    headers.popall("Content-Type", None)
    url = upstream_url(upstream, upstream.prefix + path_below_prefix, "")
    return await exchange(session, "GET", url, headers, None, upstream.timeout_s)


async def read_body(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body to EOF, or its first ``limit`` bytes (``read(n)`` alone stops at the
    first chunk, which would classify a long success as a non-JSON failure)."""
    body = bytearray()
    async for chunk in stream.iter_chunked(64 * 1024):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])
