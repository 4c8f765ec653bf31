"""Tenang and the BPJS simulator running in a background event loop, driven from
synchronous test code over raw sockets (hypothesis calls a plain function per example).

The simulator logs every request it receives (``/_sim/log``), so a fuzz property can check
where Tenang sent things: each example carries its own ``user_key`` marker, which Tenang
stores and forwards on every attempt, so a received request names the example it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from proxy.app import Tenang
from proxy.bpjs.simulator import SimConfig
from proxy.bpjs.simulator.harness import RunningSimulator, start_simulator
from proxy.config import parse_config
from proxy.ops.auth import hash_password
from tests.conftest import ADMIN_TOKEN
from tests.signing import TEST_CONS_ID, TEST_SECRET, TEST_SECRET_ENV

T = TypeVar("T")

# The services the fuzzed Tenang fronts: name -> the prefix the SIMRS uses (also the
# simulator's production prefix, so target = simulator URL + prefix).
PREFIXES = {"antrean": "/antreanrs", "vclaim": "/vclaim-rest", "aplicare": "/aplicaresws"}
UI_USER, UI_PASSWORD = "fuzz", "fuzz-password-1"
HEAD_TIMEOUT_S = 1.0  # server.header_timeout_s and body_timeout_s of the fuzzed Tenang


@dataclass
class Answer:
    """What came back on one raw connection; ``status`` None: closed without an answer."""

    status: int | None
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def parse_answer(raw: bytes) -> Answer:
    if not raw:
        return Answer(None, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        # repeated headers (Set-Cookie) are joined, as a comma-separated list would be
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return Answer(status, headers, body)


def raw_exchange(port: int, data: bytes, timeout_s: float = 10.0) -> Answer:
    """Send ``data`` as is and read until the server closes (requests say ``Connection:
    close``). No half-close: aiohttp drops a connection whose client half-closed, answer
    and all. ``status`` None when nothing came back within ``timeout_s``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        # the server may answer and close before reading everything
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return parse_answer(b"".join(chunks))


def request_bytes(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                  body: bytes = b"", *, content_length: bool = True) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: tenang.local",
             b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Stack:
    """The simulator and a Tenang with Antrean, VClaim and Aplicare upstreams."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.sim: RunningSimulator = self.run(start_simulator(
            SimConfig(cons_id=TEST_CONS_ID, secret=TEST_SECRET, aplicare_autocreate=True)))
        self.tenang: Tenang = self.run(self._start_tenang())

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    async def _start_tenang(self) -> Tenang:
        upstreams = [{"name": name, "prefix": prefix, "target": self.sim.url + prefix,
                      "preset": name, "timeout_s": 2.0, "cons_id": TEST_CONS_ID,
                      "secret_env": TEST_SECRET_ENV,
                      "retry": {"max_attempts": 3, "initial_delay_s": 0.05,
                                "max_delay_s": 0.2, "jitter": "none"},
                      "rate": {"per_second": 10_000.0, "max_concurrency": 16},
                      # a fuzzed request BPJS refuses for its credentials opens the
                      # breaker; the others must not wait the default 30 s behind it
                      "breaker": {"fail_max": 5, "reset_timeout_s": 0.3}}
                     for name, prefix in PREFIXES.items()]
        # short read timeouts, so that fuzzed requests that never finish end quickly
        raw = {"server": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0",
                          "header_timeout_s": HEAD_TIMEOUT_S, "body_timeout_s": HEAD_TIMEOUT_S},
               "store": {"url": "sqlite:///./tenang.db"},
               "relay": {"poll_interval_s": 0.05, "lease_margin_s": 1.0,
                         "shutdown_grace_s": 1.0},
               "admin": {"users": [{"name": UI_USER, "role": "admin",
                                    "password_hash": hash_password(UI_PASSWORD)}]},
               "upstreams": upstreams}
        config = parse_config(raw, self.tmp, {"TENANG_ADMIN_TOKEN": ADMIN_TOKEN,
                                              TEST_SECRET_ENV: TEST_SECRET})
        tenang = Tenang(config)
        await tenang.start()
        return tenang

    @property
    def gateway_port(self) -> int:
        return int(self.tenang.gateway_url.rsplit(":", 1)[1])

    @property
    def admin_port(self) -> int:
        return int(self.tenang.admin_url.rsplit(":", 1)[1])

    def sim_log(self) -> list[dict[str, Any]]:
        """A copy of every request the simulator received, taken on its own loop."""
        async def copy() -> list[dict[str, Any]]:
            return [dict(e) for e in self.sim.state.log]
        return self.run(copy())

    def close(self) -> None:
        self.run(self.tenang.stop())
        self.run(self.sim.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def iter_stack(tmp: Path) -> Iterator[Stack]:
    stack = Stack(tmp)
    try:
        yield stack
    finally:
        stack.close()
