"""The simulator's aiohttp application: one pipeline for every BPJS path.

Order of events for a request under a BPJS prefix, each step logged:

1. logged on arrival (so held and refused requests are visible too);
2. ``down`` mode: fails like an outage (outcome ``down``), nothing else runs;
3. latency: ``slow_latency_ms`` in ``slow`` mode, ``latency_ms`` otherwise;
4. ``flaky`` mode: ``error_rate`` of requests fail before being applied (``flaky``);
5. signature check (``bad-signature``, ``stale-timestamp``, ``bad-user-key``);
6. route lookup (unknown path: HTML 404, ``not-found``);
7. a queued one-shot fault for this path, if any (``fault``; a ``reject`` fault answers
   the service's refusal);
8. the service handler: ``ok``, ``duplicate``, ``rejected``, ``ordering``, ``throttled``.

Control paths (``/_sim/...``) bypass all of it and work in every mode.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from proxy.bpjs.simulator import antrean, aplicare, control, icare, vclaim
from proxy.bpjs.simulator.answers import Answer, Caller, Service, refuse, render
from proxy.bpjs.simulator.auth import authenticate
from proxy.bpjs.simulator.faults import (
    BEFORE_APPLY,
    FLAKY_MIX,
    OUTAGE_MIX,
    REJECT_CODE,
    REJECT_MESSAGE,
    Failure,
    drop_connection,
    fail,
    html_page,
)
from proxy.bpjs.simulator.routing import Call, Match, Route, find
from proxy.bpjs.simulator.state import STATE, LogEntry, SimulatorState

log = logging.getLogger(__name__)

PREFIXES: Mapping[str, Service] = {
    "vclaim-rest": "vclaim", "vclaim-rest-dev": "vclaim",
    "antreanrs": "antrean", "antreanrs_dev": "antrean",
    "aplicaresws": "aplicare",
    "wsihs": "icare", "ihs_dev": "icare",
}
ROUTES: Mapping[Service, tuple[Route, ...]] = {
    "vclaim": vclaim.ROUTES, "antrean": antrean.ROUTES,
    "aplicare": aplicare.ROUTES, "icare": icare.ROUTES,
}


def split_service(path: str) -> tuple[Service | None, str]:
    """``/VClaim-Rest/SEP/x`` -> ("vclaim", "SEP/x"); the prefix is case-insensitive."""
    first, _, rest = path.lstrip("/").partition("/")
    return PREFIXES.get(first.lower()), rest


def parse_body(raw: bytes) -> Any:
    """JSON whatever the Content-Type claims (VClaim labels JSON as a form), else text."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _finish(entry: LogEntry, outcome: str, response: web.Response | None,
            answer: str, code: int | None = None) -> None:
    entry["outcome"] = outcome
    entry["answer"] = answer
    entry["code"] = code
    entry["status"] = None if answer in ("reset", "timeout") else (
        response.status if response is not None else None)


async def _failure(request: web.Request, state: SimulatorState, entry: LogEntry,
                   failure: Failure, outcome: str) -> web.Response:
    # Logged before a hang starts, so a held request already shows what it will become.
    _finish(entry, outcome, None, failure)
    response = await fail(request, failure, state.settings.timeout_hang_s, state.pause)
    if failure != "reset":
        entry["status"] = response.status
    return response


_STYLES: Mapping[str, Failure] = {"html": "html-503", "reset": "reset", "timeout": "timeout"}
_FAULT_FAILURES: Mapping[str, Failure] = {"reset-before-apply": "reset", "html-500": "html-500",
                                          "html-503": "html-503", "timeout": "timeout"}


def _outage(state: SimulatorState) -> Failure:
    style = state.settings.down_style
    if style == "mixed":
        return state.rng.choice(OUTAGE_MIX)
    if style == "mixed-all":
        return state.rng.choice((*OUTAGE_MIX, "timeout"))
    return _STYLES[style]


def _flaky(state: SimulatorState) -> Failure | None:
    if state.rng.random() >= state.settings.error_rate:
        return None
    style = state.settings.flaky_style
    return state.rng.choice(FLAKY_MIX) if style == "mixed" else _STYLES[style]


async def handle_bpjs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    with state.answering_one():
        return await _handle(request, state)


async def _handle(request: web.Request, state: SimulatorState) -> web.Response:
    body = parse_body(await request.read())
    service, subpath = split_service(request.path)
    entry = state.new_entry(request.method, request.path, request.query_string, service,
                            request.headers, body, request.raw_path)
    try:
        if service is None:
            return _html(entry, 404, "not-found")
        refused = await _gate(request, state, entry)
        if refused is not None:
            return refused
        return await _serve(request, state, entry, service, subpath, body)
    except Exception:
        # A simulator bug must be loud in the test output, and the client still gets
        # what a broken BPJS would send, not a traceback.
        log.exception("simulator failed on %s %s", request.method, request.path)
        return _html(entry, 500, "error")


def _html(entry: LogEntry, status: int, outcome: str) -> web.Response:
    response = html_page(status)
    _finish(entry, outcome, response, f"html-{status}")
    return response


async def _gate(request: web.Request, state: SimulatorState,
                entry: LogEntry) -> web.Response | None:
    """Steps 2-4: the mode's outage, latency and flakiness; None lets the request in."""
    settings = state.settings
    if settings.mode == "down":
        return await _failure(request, state, entry, _outage(state), "down")
    slow = settings.mode == "slow"
    await state.pause((settings.slow_latency_ms if slow else settings.latency_ms) / 1000)
    failure = _flaky(state) if settings.mode == "flaky" else None
    if failure is not None:
        return await _failure(request, state, entry, failure, "flaky")
    return None


async def _serve(request: web.Request, state: SimulatorState, entry: LogEntry,
                 service: Service, subpath: str, body: Any) -> web.Response:
    """Steps 5-8: authenticate, route, fire a queued fault, apply, answer."""
    caller = authenticate(request.headers, state.config, state.settings, state.clock())
    if isinstance(caller, Answer):
        return _answer(state, entry, service, caller, None)
    match = find(ROUTES[service], request.method, subpath)
    if not isinstance(match, Match):
        return _html(entry, 404 if match == "not-found" else 405, match)
    fault = state.take_fault(request.method, request.path)
    if fault is not None:
        entry["fault"] = fault.action
        if fault.action in BEFORE_APPLY:
            return await _failure(request, state, entry, _FAULT_FAILURES[fault.action],
                                  "fault")
        if fault.action == "reject":
            refusal = refuse(REJECT_CODE, REJECT_MESSAGE, outcome="fault")
            return _answer(state, entry, service, refusal, caller)
        if fault.action == "delay-before-apply":
            await state.pause(fault.delay_ms / 1000)
    answer = match.route.handler(Call(request.method, subpath, match.params, body,
                                      state.clock(), state.records, state.config,
                                      state.settings))
    entry["applied"] = answer.outcome == "ok"
    if fault is not None and fault.action == "reset-after-apply":
        _finish(entry, "fault", None, "reset", answer.code)
        return drop_connection(request)
    if fault is not None and fault.action == "delay-then-answer":
        await state.pause(fault.delay_ms / 1000)
    return _answer(state, entry, service, answer, caller)


def _answer(state: SimulatorState, entry: LogEntry, service: Service, answer: Answer,
            caller: Caller | None) -> web.Response:
    response = render(service, answer, caller, state.config.secret)
    _finish(entry, answer.outcome, response, "json", answer.code)
    return response


async def _on_startup(app: web.Application) -> None:
    app[STATE].restart()


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].stop()  # release held requests so shutdown does not wait for them


def create_simulator_app(state: SimulatorState) -> web.Application:
    """The simulator as an aiohttp app: control API under ``/_sim``, BPJS everywhere else."""
    app = web.Application()
    app[STATE] = state
    control.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", handle_bpjs)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app
