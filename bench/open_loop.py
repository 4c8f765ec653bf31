"""Open-loop HTTP load at a constant rate, latency counted from the INTENDED send time.

wrk is closed-loop: each connection sends its next request only after the previous
answer, so a server that stalls for 50 ms is simply sent less, and the stall shows up
in a handful of samples instead of in every request that should have been sent
meanwhile (coordinated omission). wrk2's ``-R`` fixes that but is not packaged, hence
this client: request ``i`` is due at ``start + i / rate``; it goes out on an idle
keep-alive connection as soon as the scheduler sees it due (or waits in a queue for
one), and its latency runs from when it was due, not from when it was written.

It is a plain asyncio Protocol over pre-built request bytes (no HTTP client library),
so it costs a few tens of microseconds per request: it reports its own CPU per request
and how late the scheduler dispatched (``dispatch_p99_ms``), so a client that cannot
keep up is seen, not mistaken for a slow server.

    .venv/bin/python bench/open_loop.py --rate 2000 --duration 10 URL

(standalone, it POSTs intake_bench's signed Antrean body to URL).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.loop import new_event_loop

# How often the scheduler looks for due requests, at most: libuv's timers count whole
# milliseconds, and a shorter sleep rounds to 0 and spins (it cost the client ~250 us of
# CPU per request at 2,000 req/s). Lateness is measured from the intended time anyway.
TICK_S = 0.001
MakeRequest = Callable[[int], bytes]  # sequence number -> the whole HTTP/1.1 request


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds from intended send
    dispatch_lags: list[float] = field(default_factory=list)  # intended -> scheduled
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    socket_errors: int = 0


class _Conn(asyncio.Protocol):
    """One keep-alive connection, one request at a time (no pipelining)."""

    def __init__(self, client: OpenLoop) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.due = 0.0  # the intended send time of the request in flight
        self.need = -1  # total bytes of the answer once its head is parsed
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def send(self, due: float, request: bytes) -> None:
        assert self.transport is not None
        self.due, self.need = due, -1
        self.buf.clear()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").lower()
            self.status = int(head[9:12])
            length = 0
            for line in head.split("\r\n")[1:]:
                if line.startswith("content-length:"):
                    length = int(line[15:])
            self.need = end + 4 + length
        if len(self.buf) >= self.need:
            self.client.answered(self, self.status, self.due)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)


class OpenLoop:
    def __init__(self, host: str, port: int, make_request: MakeRequest, rate: float,
                 connections: int) -> None:
        self.host, self.port = host, port
        self.make_request = make_request
        self.rate = rate
        self.connections = connections
        self.tally = Tally()
        self.idle: list[_Conn] = []
        self.waiting: collections.deque[float] = collections.deque()
        self.in_flight = 0
        self.seq = 0
        self.measuring = False
        self.closing = False
        self._drained: asyncio.Event | None = None

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        return conn

    def _dispatch(self, due: float) -> None:
        if self.measuring:  # how late the scheduler itself is: the client's own health
            self.tally.dispatch_lags.append(time.perf_counter() - due)
        if self.idle:
            self.in_flight += 1
            self.seq += 1
            self.idle.pop().send(due, self.make_request(self.seq))
        else:
            self.waiting.append(due)  # latency keeps running while it waits

    def answered(self, conn: _Conn, status: int, due: float) -> None:
        now = time.perf_counter()
        self.in_flight -= 1
        if self.measuring:
            self.tally.latencies.append(now - due)
            self.tally.statuses[status] += 1
        self._next(conn)

    def _next(self, conn: _Conn) -> None:
        if self.waiting:
            due = self.waiting.popleft()
            self.in_flight += 1
            self.seq += 1
            conn.send(due, self.make_request(self.seq))
        else:
            self.idle.append(conn)
            if self.in_flight == 0 and self._drained is not None:
                self._drained.set()

    def lost(self, conn: _Conn) -> None:
        if self.closing:
            return
        if conn in self.idle:
            self.idle.remove(conn)
        elif conn.transport is not None and self.in_flight:
            self.in_flight -= 1
            self.tally.socket_errors += 1
        asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        try:
            conn = await self._connect()
        except OSError:
            self.tally.socket_errors += 1
            return
        self._next(conn)

    async def run(self, duration_s: float, warmup_s: float = 0.0) -> dict[str, Any]:
        conns = await asyncio.gather(*(self._connect() for _ in range(self.connections)))
        self.idle.extend(conns)
        if warmup_s > 0:
            await self._send_for(warmup_s)
            await self._drain()
        self.tally = Tally()
        self.measuring = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = await self._send_for(duration_s)
        await self._drain()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        self.closing = True
        for conn in list(self.idle):
            if conn.transport is not None:
                conn.transport.close()
        return summarise(self.tally, self.rate, sent, duration_s, wall, cpu)

    async def _send_for(self, duration_s: float) -> int:
        """Dispatch every request due in the next ``duration_s``; returns how many."""
        start = time.perf_counter()
        total = int(duration_s * self.rate)
        interval = 1.0 / self.rate
        i = 0
        while i < total:
            now = time.perf_counter()
            while i < total and start + i * interval <= now:
                self._dispatch(start + i * interval)
                i += 1
            await asyncio.sleep(max(TICK_S, start + i * interval - time.perf_counter()))
        return total

    async def _drain(self, timeout_s: float = 30.0) -> None:
        if self.in_flight == 0 and not self.waiting:
            return
        self._drained = asyncio.Event()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            self.tally.socket_errors += self.in_flight + len(self.waiting)
        self._drained = None


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def summarise(t: Tally, rate: float, sent: int, duration_s: float, wall_s: float,
              cpu_s: float) -> dict[str, Any]:
    lat = sorted(t.latencies)
    lag = sorted(t.dispatch_lags)
    ok = sum(n for s, n in t.statuses.items() if 200 <= s < 300)
    return {
        "rate": rate, "sent": sent, "answered": len(lat), "ok": ok,
        "non_2xx": len(lat) - ok, "socket_errors": t.socket_errors,
        "achieved_rps": round(len(lat) / wall_s, 1) if wall_s else 0.0,
        "p50_ms": round(_pct(lat, 50) * 1000, 2), "p90_ms": round(_pct(lat, 90) * 1000, 2),
        "p99_ms": round(_pct(lat, 99) * 1000, 2), "p999_ms": round(_pct(lat, 99.9) * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2) if lat else float("nan"),
        "dispatch_p99_ms": round(_pct(lag, 99) * 1000, 2),
        "client_cpu_us_per_request": round(cpu_s / max(len(lat), 1) * 1e6, 1),
        "duration_s": duration_s,
    }


def request_maker(url: str, headers: dict[str, str], body_for: Callable[[int], bytes]
                  ) -> tuple[str, int, MakeRequest]:
    """Host, port and a function building request ``n`` (a POST of ``body_for(n)``)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n{fixed}"
    head_bytes = head.encode("latin-1")

    def make(n: int) -> bytes:
        body = body_for(n)
        return head_bytes + b"Content-Length: %d\r\n\r\n" % len(body) + body

    return host, port, make


def open_loop(url: str, headers: dict[str, str], body_for: Callable[[int], bytes],
              rate: float, duration_s: float, connections: int = 128,
              warmup_s: float = 1.0) -> dict[str, Any]:
    """Run one open-loop measurement on a fresh event loop (uvloop where installed)."""
    host, port, make = request_maker(url, headers, body_for)
    loop = new_event_loop()
    try:
        client = OpenLoop(host, port, make, rate, connections)
        return loop.run_until_complete(client.run(duration_s, warmup_s))
    finally:
        loop.close()


def main() -> int:
    from bench.intake_bench import open_loop_request

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=2000.0, help="requests per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds sent before measuring")
    p.add_argument("--connections", type=int, default=128,
                   help="keep-alive connections (requests wait for an idle one)")
    args = p.parse_args()
    headers, body_for = open_loop_request()
    print(json.dumps(open_loop(args.url, headers, body_for, args.rate, args.duration,
                               args.connections, args.warmup)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
