"""How the simulator fails: HTML error pages, dropped connections, held connections, and
the one-shot faults tests queue through ``POST /_sim/faults``.

A "reset" closes the socket with SO_LINGER 0, so the client sees ECONNRESET rather than
an HTTP answer or a clean close. A "timeout" holds the request for ``timeout_hang_s``
(longer than any sane client timeout) and then answers 504; it ends early when the
simulator shuts down, so test teardown never waits for it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from aiohttp import web

from proxy.bpjs.simulator.settings import SettingsError

FaultAction = Literal["reset-before-apply", "reset-after-apply", "delay-then-answer",
                      "delay-before-apply", "html-500", "html-503", "timeout", "reject"]
FAULT_ACTIONS: tuple[str, ...] = get_args(FaultAction)
# Actions that stop the request before it reaches the service (nothing applied).
BEFORE_APPLY = frozenset({"reset-before-apply", "html-500", "html-503", "timeout"})
# "reject": the service's business refusal instead of applying (a permanent answer a
# proxy must not re-send), for a write BPJS would otherwise accept.
REJECT_CODE, REJECT_MESSAGE = 201, "Data tidak valid (ditolak oleh simulator)"

# What a failing request looks like on the wire.
Failure = Literal["html-500", "html-502", "html-503", "reset", "timeout"]
OUTAGE_MIX: tuple[Failure, ...] = ("html-503", "html-502", "reset")
FLAKY_MIX: tuple[Failure, ...] = ("html-500", "html-503", "reset")

_PAGES = {
    404: "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found"
         "</h1></center><hr><center>nginx</center></body></html>",
    405: "<html><head><title>405 Not Allowed</title></head><body><center><h1>405 Not "
         "Allowed</h1></center><hr><center>nginx</center></body></html>",
    # ASP.NET-style page, as seen from the VClaim dev host (reference §4.2)
    500: "<html><head><title>Runtime Error</title></head><body><h1>Server Error in '/' "
         "Application.</h1><h2><i>Runtime Error</i></h2></body></html>",
    502: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
         "Gateway</h1></center><hr><center>nginx</center></body></html>",
    503: "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
         "<center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx"
         "</center></body></html>",
    504: "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 "
         "Gateway Time-out</h1></center><hr><center>nginx</center></body></html>",
}


@dataclass
class Fault:
    """A queued one-shot fault; it fires for the next ``times`` matching requests.

    Only requests that pass the mode (not failed by ``down``/``flaky``), the signature
    check and routing consume a fault, so a fault queued for an insert waits for a real
    insert. ``delay-then-answer`` applies first and answers after ``delay_ms`` (a slow
    BPJS that has committed); ``delay-before-apply`` waits, then applies and answers, so
    a client that gave up meanwhile leaves a request that still lands. ``reject`` answers
    the service's envelope with code 201 and applies nothing.
    """

    id: int
    path_contains: str
    action: FaultAction
    delay_ms: float = 0.0
    times: int = 1
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.path_contains.lower() in path.lower()
                and (self.method is None or self.method == method.upper()))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_fault(doc: Mapping[str, Any], fault_id: int) -> Fault:
    """A fault from the control API's JSON; bad values raise SettingsError naming the key."""
    unknown = set(doc) - {"path_contains", "action", "delay_ms", "times", "method"}
    if unknown:
        raise SettingsError(f"unknown fault keys: {sorted(unknown)}")
    action = doc.get("action")
    if action not in FAULT_ACTIONS:
        raise SettingsError(f"action must be one of {FAULT_ACTIONS}")
    path = doc.get("path_contains", "")
    if not isinstance(path, str):
        raise SettingsError("path_contains must be a string")
    delay, times, method = doc.get("delay_ms", 0), doc.get("times", 1), doc.get("method")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise SettingsError("delay_ms must be a non-negative number")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise SettingsError("times must be a positive integer")
    if method is not None and not isinstance(method, str):
        raise SettingsError("method must be a string")
    return Fault(fault_id, path, action, float(delay), times,
                 method.upper() if method else None)


def html_page(status: int) -> web.Response:
    return web.Response(status=status, text=_PAGES[status], content_type="text/html")


def drop_connection(request: web.Request) -> web.Response:
    """Reset the client's connection; the returned response is never written."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=500)


async def fail(request: web.Request, failure: Failure, hang_s: float,
               pause: Callable[[float], Awaitable[None]]) -> web.Response:
    """Answer like a broken BPJS: an HTML page, a reset, or a held connection."""
    if failure == "reset":
        return drop_connection(request)
    if failure == "timeout":
        await pause(hang_s)
        return html_page(504)
    return html_page(int(failure.removeprefix("html-")))
