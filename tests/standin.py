"""Test support: a stand-in upstream that answers like a BPJS Antrean service, and can be
told to fail.

The BPJS simulator (proxy/bpjs/simulator, `tenang simulate-bpjs`) replaced it for the
demo and the benchmarks; tests that count applied writes still use it, so it lives here,
outside the installed package. It applies each write once, keyed by ``kodebooking``
(+ ``taskid``) or by the body itself, and answers a repeat with Antrean's ``208``
duplicate envelope, so tests can prove nothing was applied twice. Control:
``POST /_standin/mode`` with
``{"mode": "up" | "down" | "reject" | "flaky", "fail_rate": 0.3, "latency_ms": 0}``;
``GET /_standin/log`` lists every request received.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Mode = Literal["up", "down", "reject", "flaky"]
MODES: tuple[Mode, ...] = ("up", "down", "reject", "flaky")

DOWN_PAGE = (b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
             b"<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>")


@dataclass
class StandinState:
    mode: Mode = "up"
    fail_rate: float = 0.3
    latency_ms: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    applied: Counter[str] = field(default_factory=Counter)
    log: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def deliveries(self, outcome: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.log if outcome is None or e["outcome"] == outcome]


STATE = web.AppKey("standin_state", StandinState)


def _antrean(code: int, message: str) -> web.Response:
    return web.json_response({"metadata": {"code": code, "message": message},
                              "response": None})


def dedup_key(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "kodebooking" in doc:
        return f"{doc['kodebooking']}/{doc.get('taskid', 'add')}"
    return hashlib.sha256(body).hexdigest()


async def handle(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await request.read()
    entry: dict[str, Any] = {"method": request.method, "path": request.path,
                             "body": body.decode("utf-8", "replace"), "time": time.time(),
                             "headers": dict(request.headers)}
    state.log.append(entry)
    state.arrived.set()
    if state.latency_ms:
        await asyncio.sleep(state.latency_ms / 1000)
    failing = state.mode == "down" or (
        state.mode == "flaky" and state.rng.random() < state.fail_rate)
    if failing:
        entry["outcome"] = "down"
        return web.Response(status=503, body=DOWN_PAGE, content_type="text/html")
    if state.mode == "reject":
        entry["outcome"] = "rejected"
        return _antrean(201, "Rujukan tidak valid")
    key = dedup_key(body)
    state.applied[key] += 1
    if state.applied[key] > 1:
        entry["outcome"] = "duplicate"
        return _antrean(208, "Terdapat duplikasi Kode Booking")
    entry["outcome"] = "ok"
    return _antrean(200, "Ok.")


async def set_mode(request: web.Request) -> web.Response:
    state = request.app[STATE]
    doc = await request.json()
    if doc.get("mode") not in MODES:
        return web.json_response({"error": f"mode must be one of {MODES}"}, status=400)
    state.mode = doc["mode"]
    state.fail_rate = float(doc.get("fail_rate", state.fail_rate))
    state.latency_ms = float(doc.get("latency_ms", state.latency_ms))
    return web.json_response({"mode": state.mode, "fail_rate": state.fail_rate})


async def get_log(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].log)


def create_standin_app(state: StandinState | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = state or StandinState()
    app.router.add_post("/_standin/mode", set_mode)
    app.router.add_get("/_standin/log", get_log)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
