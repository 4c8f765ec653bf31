"""The simulator run in-process on a loopback port, with async helpers that go through
its control API: what Tenang's tests (the ``bpjs_sim`` fixture), demo and benchmarks use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from proxy.bpjs.simulator import client
from proxy.bpjs.simulator.app import create_simulator_app
from proxy.bpjs.simulator.settings import SimConfig
from proxy.bpjs.simulator.state import Clock, SimulatorState


class RunningSimulator:
    """A started simulator. ``close()`` is idempotent; helpers fail after it."""

    def __init__(self, url: str, state: SimulatorState, runner: web.AppRunner,
                 http: aiohttp.ClientSession) -> None:
        self.url = url
        self.state = state
        self._runner = runner
        self._http = http

    @property
    def cons_id(self) -> str:
        return self.state.config.cons_id

    @property
    def secret(self) -> str:
        return self.state.config.secret

    def signed_headers(self, service: str = "antrean", *, method: str = "GET",
                       now: float | None = None,
                       user_key: str = client.DEFAULT_USER_KEY) -> dict[str, str]:
        """Headers a correct SIMRS sends; ``now`` defaults to the simulator's clock."""
        return client.signed_headers(self.cons_id, self.secret, service, method=method,
                                     user_key=user_key,
                                     now=self.state.clock() if now is None else now)

    def decrypt(self, answer: Mapping[str, Any], headers: Mapping[str, str]) -> Any:
        return client.decrypt(answer, self.cons_id, self.secret, headers)

    async def _control(self, method: str, path: str, body: Any = None,
                       params: Mapping[str, str] | None = None) -> Any:
        async with self._http.request(method, f"{self.url}/_sim/{path}", json=body,
                                      params=params) as resp:
            doc = await resp.json()
            if resp.status >= 400:
                raise ValueError(f"/_sim/{path}: {doc.get('error', doc)}")
            return doc

    async def set_mode(self, mode: str | None = None, **settings: Any) -> dict[str, Any]:
        """``POST /_sim/mode``; keyword arguments are settings (``latency_ms=...``)."""
        body = {**({"mode": mode} if mode else {}), **settings}
        result: dict[str, Any] = await self._control("POST", "mode", body)
        return result

    async def fault(self, path_contains: str, action: str, *, delay_ms: float = 0,
                    times: int = 1, method: str | None = None) -> dict[str, Any]:
        """Queue a one-shot fault (``POST /_sim/faults``)."""
        body: dict[str, Any] = {"path_contains": path_contains, "action": action,
                                "delay_ms": delay_ms, "times": times}
        if method:
            body["method"] = method
        result: dict[str, Any] = await self._control("POST", "faults", body)
        return result

    async def log(self, path_contains: str | None = None, outcome: str | None = None,
                  method: str | None = None) -> list[dict[str, Any]]:
        """``GET /_sim/log`` with its filters."""
        params = {k: v for k, v in (("path_contains", path_contains), ("outcome", outcome),
                                    ("method", method)) if v is not None}
        result: list[dict[str, Any]] = await self._control("GET", "log", params=params)
        return result

    async def snapshot(self) -> dict[str, Any]:
        """``GET /_sim/state``."""
        result: dict[str, Any] = await self._control("GET", "state")
        return result

    async def reset(self) -> None:
        await self._control("POST", "reset")

    async def close(self) -> None:
        if not self._http.closed:
            await self._http.close()
            await self._runner.cleanup()


async def start_simulator(config: SimConfig, *, host: str = "127.0.0.1", port: int = 0,
                          clock: Clock | None = None) -> RunningSimulator:
    """Start a simulator on ``host:port`` (0: any free port) in the running loop."""
    state = SimulatorState(config) if clock is None else SimulatorState(config, clock)
    runner = web.AppRunner(create_simulator_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningSimulator(f"http://{bound_host}:{bound_port}", state, runner,
                            aiohttp.ClientSession())
