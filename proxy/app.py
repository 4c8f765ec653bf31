"""Composition root: the store, the relay, the SIMRS-facing and the admin listeners."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from proxy.admin_api import create_admin_app
from proxy.config import Config, HostPort
from proxy.gateway import Gateway, create_gateway_app
from proxy.policies.breaker import AsyncBreaker, BreakerState
from proxy.relay import Relay
from proxy.store import open_store
from proxy.store.base import Store

log = logging.getLogger("tenang")


def _log_transition(name: str, old: BreakerState, new: BreakerState) -> None:
    log.warning("circuit breaker for upstream %s: %s -> %s", name, old.value, new.value,
                extra={"upstream": name})


def build_breakers(config: Config) -> dict[str, AsyncBreaker]:
    return {
        up.name: AsyncBreaker(up.name, up.breaker.fail_max, up.breaker.reset_timeout_s,
                              on_change=_log_transition)
        for up in config.upstreams
    }


async def _site(app: web.Application, where: HostPort) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, where.host, where.port, backlog=1024).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


class Tenang:
    """A running Tenang: ``await start()``, then ``await stop()`` (idempotent)."""

    def __init__(self, config: Config, store: Store | None = None, *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 relay_enabled: bool = True) -> None:
        if not config.admin.token:
            raise ValueError(f"admin token missing: set the {config.admin.token_env} "
                             "environment variable")
        self.config = config
        self.store = store or open_store(config.store)
        self.clock = clock
        self.rng = rng
        self.relay_enabled = relay_enabled
        self.breakers = build_breakers(config)
        self.relay: Relay | None = None
        self.session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self.gateway_url = ""
        self.admin_url = ""

    async def start(self) -> None:
        await self.store.open()
        for up in self.config.upstreams:
            if not up.secret:
                log.warning("upstream %s has no consumer secret configured: stored requests "
                            "are replayed with the SIMRS's original headers", up.name)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=64),
            auto_decompress=True,
        )
        self.relay = Relay(self.config, self.store, self.session, self.breakers,
                           clock=self.clock, rng=self.rng)
        if self.relay_enabled:
            self.relay.start()
        admin = create_admin_app(self.store, self.config.admin.token or "", self.breakers,
                                 self.relay)
        runner, self.admin_url = await _site(admin, self.config.server.admin_listen)
        self._runners.append(runner)
        gateway = Gateway(self.config, self.store, self.relay)
        gateway.admin_base = f"{self.admin_url}/api/v1/requests/"
        runner, self.gateway_url = await _site(create_gateway_app(gateway),
                                               self.config.server.listen)
        self._runners.append(runner)
        log.info("Tenang listening for the SIMRS on %s, admin on %s", self.gateway_url,
                 self.admin_url)

    async def stop(self) -> None:
        """Stop intake first (in-progress intakes still finish their commit), then the
        relay with its grace period, then the store. Idempotent."""
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        if self.session is not None:
            await self.session.close()
            self.session = None
        await self.store.close()
