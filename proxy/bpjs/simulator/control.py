"""The control API under ``/_sim``, on the simulator's own port and live in every mode.

- ``GET  /_sim/mode``    current settings.
- ``POST /_sim/mode``    ``{"mode": "up"|"down"|"slow"|"flaky", ...settings}``; any key of
  ``Settings`` may be given (``latency_ms``, ``slow_latency_ms``, ``error_rate``,
  ``down_style``, ``flaky_style``, ``timeout_hang_s``, ``max_skew_s``,
  ``icare_throttle_s``, ``aplicare_autocreate``), ``mode`` included or not. With
  ``"mode": "slow"``, a ``latency_ms`` without ``slow_latency_ms`` sets the slow wait.
- ``POST /_sim/faults``  queue a one-shot fault (see faults.py); ``GET`` lists the queue,
  ``DELETE`` empties it.
- ``POST /_sim/reset``   forget records, log and faults; restore start-up settings.
- ``GET  /_sim/log``     every request received, refused ones included; filters
  ``?path_contains=&outcome=&method=``.
- ``GET  /_sim/state``   SEPs, bookings with their task ids, beds, settings, faults, and
  ``concurrency``: requests being answered now and the most at once since start/reset.

Bad input answers 400 ``{"error": "..."}`` naming the key.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from proxy.bpjs.simulator.settings import SettingsError
from proxy.bpjs.simulator.state import STATE


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SettingsError("body must be a JSON object")
    return doc


def _bad_request(exc: SettingsError) -> web.Response:
    return web.json_response({"error": str(exc)}, status=400)


async def get_mode(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].settings.as_dict())


async def set_mode(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.settings = state.settings.updated(await _json_object(request))
    except SettingsError as exc:
        return _bad_request(exc)
    return web.json_response(state.settings.as_dict())


async def add_fault(request: web.Request) -> web.Response:
    try:
        fault = request.app[STATE].add_fault(await _json_object(request))
    except SettingsError as exc:
        return _bad_request(exc)
    return web.json_response(fault.as_dict(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response([f.as_dict() for f in request.app[STATE].faults])


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.json_response([])


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def get_log(request: web.Request) -> web.Response:
    q = request.query
    entries = request.app[STATE].entries(q.get("path_contains"), q.get("outcome"),
                                         q.get("method"))
    return web.json_response(entries)


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].snapshot())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/mode", get_mode)
    app.router.add_post("/_sim/mode", set_mode)
    app.router.add_post("/_sim/faults", add_fault)
    app.router.add_get("/_sim/faults", list_faults)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/log", get_log)
    app.router.add_get("/_sim/state", get_state)
