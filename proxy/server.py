"""Listeners that slow or idle clients cannot exhaust.

aiohttp bounds only idle keep-alive time, and by default to an hour; a request line,
header block or body that never finishes holds its socket (and a file descriptor) for
as long as the client likes, so idle sockets from a hospital LAN could stop accept().
Each listener here has, from ``[server]``:

- ``header_timeout_s``: a request's head (request line and headers) must arrive within
  this long of its first byte; a new connection's first head within this long of the
  connect (nginx's client_header_timeout). Past it: 408, connection closed.
- ``body_timeout_s``: the whole body within this long of its head, however it trickles.
  Past it the handler's read raises ``BodyTimeout`` (a 408; intake stores nothing) and
  the connection is closed.
- ``keepalive_timeout_s``: an idle connection between requests is closed after this
  (never one whose head is under way: that is ``header_timeout_s``'s, even if longer).
- ``max_connections``: open connections per listener; one more is answered 503 with
  ``Retry-After`` and closed at once, so the server keeps answering the ones it has.

A pipelined head that arrives in the same read as the previous request's end is not
timed separately: the keep-alive timer bounds it.

Answers the listener gives before any handler runs (a request aiohttp's parser refuses,
a CONNECT, an Expect header aiohttp cannot read) are in the listener's ``refusal``
format too (the service's envelope on the SIMRS port), never aiohttp's plain text.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import _ErrInfo
from aiohttp.web_request import BaseRequest

from proxy.config import ServerConfig

# Status and message to the body of an answer the listener writes by itself.
Refusal = Callable[[int, str], bytes]


def json_error(status: int, message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class BodyTimeout(web.HTTPRequestTimeout):
    """The request body did not arrive within ``server.body_timeout_s``."""

    def __init__(self, seconds: float) -> None:
        self.message = (f"request body not received within {seconds:g} s "
                        "(server.body_timeout_s); not stored")
        super().__init__(text=json.dumps({"error": self.message}),
                         content_type="application/json")


@dataclass(slots=True)
class Limits:
    """One listener's limits, and how many connections it holds now."""

    header_timeout_s: float
    body_timeout_s: float
    keepalive_timeout_s: float
    max_connections: int
    refusal: Refusal = json_error
    open: int = field(default=0, init=False)
    refused: int = field(default=0, init=False)

    @classmethod
    def of(cls, server: ServerConfig, refusal: Refusal = json_error) -> Limits:
        return cls(server.header_timeout_s, server.body_timeout_s,
                   server.keepalive_timeout_s, server.max_connections, refusal)


# The longest piece of a parser's complaint quoted back to the client.
MAX_QUOTED = 200
CONNECT_REFUSED = ("CONNECT tidak didukung / CONNECT is not supported: Tenang forwards "
                   "only configured BPJS paths and is not a proxy")


def _answer(limits: Limits, status: int, reason: str, message: str,
            extra: str = "") -> bytes:
    body = limits.refusal(status, message)
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
            ).encode() + body


class GuardedHandler(web.RequestHandler):
    """aiohttp's request handler with head and body deadlines and a connection cap."""

    def __init__(self, manager: web.Server, *, limits: Limits,
                 loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, keepalive_timeout=limits.keepalive_timeout_s,
                         **kwargs)
        self._limits = limits
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self._limits
        if limits.open >= limits.max_connections:
            limits.refused += 1
            # uvloop's TCP transport is no asyncio.Transport subclass, but it writes.
            transport = cast(asyncio.Transport, transport)
            transport.write(_answer(
                limits, 503, "Service Unavailable",
                f"Tenang sibuk / too many open connections ({limits.max_connections}, "
                "server.max_connections); coba lagi / retry shortly", "Retry-After: 1\r\n"))
            transport.close()
            return
        limits.open += 1
        self._admitted = True
        super().connection_made(transport)
        self._arm_head()  # the first request's head is due from the connect

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._limits.open -= 1
        self._cancel_head()
        self._cancel_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._refuse_connect(self._request_count - heads)
        if self._close or self._force_close:
            return
        if self._request_count != heads:  # one or more heads are complete
            self._cancel_head()
            self._cancel_body()
            payload = self._messages[-1][1] if self._messages else None
            if payload is not None and not payload.is_eof():
                self._arm_body(payload)
        elif self._body is None and data and self._head_timer is None:
            self._arm_head()  # the first bytes of the next head

    def _refuse_connect(self, new: int) -> None:
        """A CONNECT's target is an authority, not a path, so aiohttp's router would
        answer it a plain-text 404: it becomes an error message instead, which aiohttp
        hands to ``handle_error`` (405, this listener's format, connection closed)."""
        for index in range(len(self._messages) - new, len(self._messages)):
            message, payload = self._messages[index]
            if getattr(message, "method", None) == "CONNECT":
                refused = web.HTTPMethodNotAllowed("CONNECT", [], text=CONNECT_REFUSED)
                self._messages[index] = (_ErrInfo(status=405, exc=refused,
                                                  message=CONNECT_REFUSED), payload)

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's own error answers (a request its parser refuses, an error in its
        routing) in this listener's format, with no traceback. A UnicodeError here
        comes from aiohttp reading client bytes that are not text (an Expect header,
        say): the client's fault, so a 400, not a 500."""
        if status == HTTPStatus.INTERNAL_SERVER_ERROR and isinstance(exc, UnicodeError):
            status, message = 400, "header bytes are not valid text; not stored"
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was sent already; no error answer possible")
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            self.log_exception("Error handling request from %s", request.remote,
                               exc_info=exc)
        else:
            # Anyone can send garbage to the port: one quiet line, not a traceback each.
            self.logger.debug("refused a malformed request from %s: %s", request.remote,
                              message)
        if status == HTTPStatus.INTERNAL_SERVER_ERROR:
            text = "Kesalahan internal Tenang / internal Tenang error"
        elif message:
            text = f"{HTTPStatus(status).phrase}: {message[:MAX_QUOTED]}"
        else:
            text = HTTPStatus(status).phrase
        response = web.Response(status=status, body=self._limits.refusal(status, text),
                                content_type="application/json")
        response.force_close()
        return response

    def _process_keepalive(self) -> None:
        """aiohttp arms its keep-alive timer at the connect too, and at
        keepalive_timeout_s it closed a connection whose first head was still arriving,
        silently, before a longer header_timeout_s could answer 408. A head under way
        (or due, on a new connection) is the head timer's; idle time between requests
        stays aiohttp's (re-armed after each answer)."""
        if self._head_timer is not None:
            self._keepalive_handle = None
            return
        super()._process_keepalive()

    def _arm_head(self) -> None:
        self._head_timer = self._loop.call_later(self._limits.header_timeout_s,
                                                 self._head_timed_out)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _arm_body(self, payload: StreamReader) -> None:
        self._body = payload
        self._body_timer = self._loop.call_later(self._limits.body_timeout_s,
                                                 self._body_timed_out)
        payload.on_eof(self._cancel_body)

    def _cancel_body(self) -> None:
        self._body = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._request_in_progress:
            self.close()  # a pipelined head behind a running request: finish that one
            return
        if self.transport is not None:
            self.transport.write(_answer(
                self._limits, 408, "Request Timeout",
                f"request head not received within {self._limits.header_timeout_s:g} s "
                "(server.header_timeout_s)"))
        self.force_close()

    def _body_timed_out(self) -> None:
        payload, self._body_timer, self._body = self._body, None, None
        if payload is None or payload.is_eof():
            return
        self._lingering_time = 0.0  # nothing more is read from this client
        if self._request_in_progress:
            # The handler's read raises: it answers 408, then the connection closes.
            payload.set_exception(BodyTimeout(self._limits.body_timeout_s))
            self.close()
        else:
            # Answered already (aiohttp is reading the rest away): what its lingering
            # read expects when time is up, then close.
            payload.set_exception(TimeoutError())
            self.force_close()


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections are ``GuardedHandler``s under ``limits``."""

    __slots__ = ("_host", "_limits", "_port", "_sock")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: Limits,
                 *, backlog: int = 1024, sock: socket.socket | None = None) -> None:
        """``sock``: an already bound listening socket for host:port (Tenang binds its
        ports before anything else starts, see proxy.app)."""
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._limits = limits
        self._sock = sock

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def limits(self) -> Limits:
        return self._limits

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None
        limits = self._limits

        def handler() -> GuardedHandler:
            return GuardedHandler(manager, limits=limits, loop=loop, access_log=None)

        if self._sock is not None:
            self._server = await loop.create_server(handler, sock=self._sock,
                                                    backlog=self._backlog)
        else:
            self._server = await loop.create_server(handler, self._host, self._port,
                                                    backlog=self._backlog)


# Descriptors beyond client connections: the database, the WAL, upstream connections,
# log files, the listening sockets.
FD_RESERVE = 256


def ensure_fd_room(limits: list[Limits]) -> str | None:
    """Raise the soft open-file limit so every listener can reach its max_connections
    (as Go's runtime and nginx's worker_rlimit_nofile do): systemd and most shells start
    a service at a soft limit of 1024, below two default caps, and accept() would fail
    with EMFILE before the cap ever applied. Returns a warning if even the hard limit is
    too low."""
    need = sum(limit.max_connections for limit in limits) + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    if target >= need:
        return None
    return (f"open-file limit is {target}, below the {need} that server.max_connections "
            f"on both ports needs: raise it (LimitNOFILE= in the systemd unit, ulimit -n) "
            "or lower server.max_connections")
