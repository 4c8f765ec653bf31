"""Sending one stored request to its configured upstream over a shared ClientSession."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from proxy.config import UpstreamConfig
from proxy.store.base import StoredRequest

# Responses are kept for ops and auditors, but a runaway body must not fill the disk.
MAX_STORED_RESPONSE_BYTES = 64 * 1024
# The classifier needs the whole envelope, so far more is read than is stored.
MAX_READ_RESPONSE_BYTES = 8 * 1024 * 1024

# Set by the HTTP client itself for the upstream connection.
_RECOMPUTED = frozenset({"host", "content-length"})


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    duration_s: float


def target_url(upstream: UpstreamConfig, request: StoredRequest) -> str:
    """The upstream URL for a stored request: the configured target plus the path
    below the prefix. Only configured targets are ever contacted."""
    rest = request.path[len(upstream.prefix):]
    url = upstream.target.rstrip("/") + (rest if rest.startswith("/") or not rest else "/" + rest)
    return f"{url}?{request.query}" if request.query else url


def outgoing_headers(request: StoredRequest) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers:
        if name.lower() not in _RECOMPUTED:
            headers.add(name, value)
    return headers


async def send(session: aiohttp.ClientSession, upstream: UpstreamConfig,
               request: StoredRequest) -> Reply:
    """Send ``request`` once. Raises aiohttp/timeout errors when no answer arrives."""
    started = time.perf_counter()
    url = target_url(upstream, request)
    if urlsplit(url).netloc != urlsplit(upstream.target).netloc:
        raise ValueError(f"refusing to send {request.id} outside {upstream.target}")
    async with session.request(
        request.method, url, headers=outgoing_headers(request), data=request.body,
        allow_redirects=False, timeout=aiohttp.ClientTimeout(total=upstream.timeout_s),
        skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
    ) as resp:
        body = await read_body(resp.content, MAX_READ_RESPONSE_BYTES)
        return Reply(resp.status, CIMultiDict(resp.headers), body,
                     time.perf_counter() - started)


async def read_body(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body to EOF, or its first ``limit`` bytes (``read(n)`` alone stops at the
    first chunk, which would classify a long success as a non-JSON failure)."""
    body = bytearray()
    async for chunk in stream.iter_chunked(64 * 1024):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])
