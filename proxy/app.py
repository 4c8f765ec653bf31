"""Composition root: the store, the relay, the SIMRS-facing and the admin listeners,
and the operations side (metrics, maintenance windows, notifications)."""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from admin_ui import setup_ui
from proxy.app_keys import EXPORT_PAGES
from proxy.config import Config, HostPort
from proxy.delivery.callback_sender import CallbackSender
from proxy.delivery.relay import Relay, instance_owner
from proxy.delivery.shared_breaker import SharedBreaker
from proxy.intake.allow_from import restrict
from proxy.intake.answers import envelope
from proxy.intake.backpressure import Backpressure
from proxy.intake.credentials import unsigned_warnings
from proxy.intake.gateway import Gateway, create_gateway_app
from proxy.intake.passthrough import Passthrough
from proxy.intake.readiness import add_readiness_route
from proxy.lifecycle import Status
from proxy.observe.metrics import Metrics, add_metrics_route
from proxy.observe.notify import Notifier
from proxy.observe.notify_channels import build_channels
from proxy.observe.observer import Telemetry
from proxy.ops.admin_api import create_admin_app
from proxy.ops.maintenance import Maintenance
from proxy.ops.maintenance_api import add_maintenance_routes
from proxy.ops.retention import Purger, RetentionJob
from proxy.policies.breaker import AsyncBreaker, BreakerState, StateListener
from proxy.preflight import listen_error
from proxy.server import GuardedSite, Limits, ensure_fd_room
from proxy.store import export_reader, open_store
from proxy.store.backend import Backend

log = logging.getLogger("tenang")


def _log_transition(name: str, old: BreakerState, new: BreakerState) -> None:
    log.warning("circuit breaker for upstream %s: %s -> %s", name, old.value, new.value,
                extra={"upstream": name})


def build_breakers(config: Config, on_change: StateListener | None = None, *,
                   clock: Callable[[], float] = time.time) -> dict[str, AsyncBreaker]:
    """One breaker per upstream; ``on_change`` (default: log it) hears every transition."""
    return {
        up.name: AsyncBreaker(up.name, up.breaker.fail_max, up.breaker.reset_timeout_s,
                              on_change=on_change or _log_transition, clock=clock)
        for up in config.upstreams
    }


def insecure_cookie_warning(config: Config) -> str | None:
    """What to tell ops when the admin UI is reachable from other machines but its
    session cookie would also travel over plain HTTP."""
    host = config.server.admin_listen.host
    if config.admin.cookie_secure or host in ("localhost", "::1") or host.startswith("127."):
        return None
    return (f"the admin UI listens on {host}, off loopback, with admin.cookie_secure = false: "
            "session cookies also go over plain HTTP; put it behind TLS and set "
            "admin.cookie_secure = true")


def _check_ops_secrets(config: Config) -> None:
    if config.metrics.token_env and not config.metrics.token:
        raise ValueError(f"metrics token missing: set the {config.metrics.token_env} "
                         "environment variable (or empty metrics.token_env)")
    n = config.notify
    if n.telegram.chat_id and not n.telegram.token:
        log.error("notify.telegram: %s is not set; Telegram notifications are off",
                  n.telegram.token_env)
    if n.webhook.url and n.webhook.secret_env and not n.webhook.secret:
        log.error("notify.webhook: %s is not set; webhook notifications go out unsigned",
                  n.webhook.secret_env)


def _bind(where: HostPort, key: str) -> socket.socket:
    """Claim a port before anything else starts, so a second Tenang on the same port
    fails at once, before it opens the store or delivers anything."""
    family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
    try:
        return socket.create_server((where.host, where.port), family=family, backlog=1024)
    except OSError as exc:
        raise listen_error(exc, where, key) from None


async def _site(app: web.Application, where: HostPort, sock: socket.socket,
                limits: Limits) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await GuardedSite(runner, where.host, where.port, limits, backlog=1024,
                      sock=sock).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


class Tenang:
    """A running Tenang: ``await start()``, then ``await stop()`` (idempotent)."""

    def __init__(self, config: Config, backend: Backend | None = None, *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 relay_enabled: bool = True) -> None:
        if not config.admin.token:
            raise ValueError(f"admin token missing: set the {config.admin.token_env} "
                             "environment variable")
        self.config = config
        # Each part below gets only the store roles it uses.
        self.backend = backend or open_store(config.store)
        self.clock = clock
        self.rng = rng
        self.relay_enabled = relay_enabled
        _check_ops_secrets(config)
        names = [up.name for up in config.upstreams]
        self.metrics = Metrics(names, clock=clock)
        self.notifier = Notifier(config.notify, build_channels(config.notify), clock=clock,
                                 quiet=self._quiet, summary=self.backend.log.summary,
                                 on_result=self.metrics.notification,
                                 claims=self.backend.notices)
        self.breakers = build_breakers(config, on_change=self._breaker_changed,
                                       clock=clock)
        self.owner = instance_owner()
        # Instances sharing the store share each upstream's breaker through it; alone on
        # it (SQLite), the breakers stay in-process and cost the store nothing.
        self.shared_breakers = [
            SharedBreaker(self.breakers[up.name], self.backend.coordination, self.owner,
                          clock, up.timeout_s + config.relay.lease_margin_s)
            for up in config.upstreams] if self.backend.coordination.shared else []
        self.maintenance = Maintenance(self.backend.schedules, self.breakers,
                                       config.maintenance, clock=clock,
                                       on_change=self._maintenance_changed,
                                       audit=self.backend.audit.audit)
        # [retention]: the daily purge (a no-op task-wise when nothing is configured).
        self.purger = Purger(self.backend.retention, config.retention,
                             audit=self.backend.audit, clock=clock)
        self.retention = RetentionJob(self.purger, config.retention, clock=clock)
        self.metrics.watch_store(self.backend.log.summary)
        self.metrics.watch_maintenance(
            lambda name: self.maintenance.active(name, self.clock()) is not None)
        # What intake and the relay report (accepted, attempt, finished) goes here.
        self.backpressure = Backpressure(config, self.backend.intake,
                                         free_bytes=self.backend.free_bytes)
        # Per listener: slow or idle clients on one port never use up the other's.
        self.gateway_limits = Limits.of(config.server,
                                        lambda status, msg: envelope(None, status, msg))
        self.admin_limits = Limits.of(config.server)
        self.observer = Telemetry(self.metrics, self.notifier, on_finished=self._finished)
        self.relay: Relay | None = None
        self.callbacks: CallbackSender | None = None
        self.session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self._sockets: list[socket.socket] = []
        self.gateway_url = ""
        self.admin_url = ""

    def _finished(self, upstream: str, request_id: str, status: Status, reason: str) -> None:
        """The relay stored a request's new state: backpressure's running count, and the
        callback sender, which sends a callback queued with a final state at once."""
        self.backpressure.finished(upstream, request_id, status, reason)
        if self.callbacks is not None:
            self.callbacks.finished(upstream, request_id, status, reason)

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        _log_transition(name, old, new)
        self.metrics.breaker_changed(name, old, new)
        self.notifier.breaker_changed(name, old, new)

    def _quiet(self, upstream: str, now: float) -> bool:
        return self.maintenance.quiet(upstream, now)

    def _maintenance_changed(self, upstream: str, active: bool) -> None:
        if not active and self.relay is not None:
            # The backlog of the whole window is due at once: pace it up gradually.
            self.relay.lanes[upstream].pacer.ramp_up(self.config.maintenance.ramp_s)

    async def start(self) -> None:
        """Open the store, start the relay and bind both ports. If any step fails (a port
        in use), what already started is stopped again before the error propagates, so
        the process can exit instead of hanging on live tasks and threads."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        server = self.config.server
        fd_warning = ensure_fd_room([self.gateway_limits, self.admin_limits])
        if fd_warning is not None:
            log.warning(fd_warning)
        self._sockets = [_bind(server.admin_listen, "server.admin_listen")]
        self._sockets.append(_bind(server.listen, "server.listen"))
        await self.backend.open()
        for shared in self.shared_breakers:
            await shared.start()
        # Before the relay starts: a restart inside a window must not send anything.
        await self.maintenance.tick()
        self.maintenance.start()
        self.notifier.start()
        self.retention.start()
        warning = insecure_cookie_warning(self.config)
        if warning is not None:
            log.warning(warning)
        for message in unsigned_warnings(self.config):
            log.warning(message)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=64),
            auto_decompress=True,
        )
        self.relay = Relay(self.config, self.backend.queue, self.session, self.breakers,
                           clock=self.clock, rng=self.rng, owner=self.owner,
                           observer=self.observer, coordination=self.backend.coordination,
                           send_slots=self.backend.send_slots)
        if self.relay_enabled:
            self.relay.start()
        # Outcome callbacks go out on their own task: a slow receiver never holds the relay.
        self.callbacks = CallbackSender(self.config, self.backend.outbox,
                                        clock=self.clock)
        if self.relay_enabled:
            self.callbacks.start()
        admin = create_admin_app(self.backend, self.config.admin.token or "", self.breakers,
                                 self.relay, self.config.admin, clock=self.clock,
                                 upstreams={u.name: u for u in self.config.upstreams})
        add_readiness_route(admin, self.backend.engine, self.backpressure)
        add_metrics_route(admin, self.metrics, self.config.metrics.token)
        add_maintenance_routes(admin, self.maintenance)
        admin[EXPORT_PAGES] = export_reader(self.config.store)
        setup_ui(admin)  # the admin web UI at /, on the services registered above
        restrict(admin, self.config.server.allow_from, admin=True)
        runner, self.admin_url = await _site(admin, self.config.server.admin_listen,
                                             self._sockets[0], self.admin_limits)
        self._runners.append(runner)
        session = self.session
        passthrough = Passthrough(lambda: session, self.breakers, self.clock,
                                  self.observer)
        gateway = Gateway(self.config, self.backend.intake, self.relay, observer=self.observer,
                          passthrough=passthrough, backpressure=self.backpressure,
                          clock=self.clock)
        simrs = restrict(create_gateway_app(gateway), self.config.server.allow_from,
                         admin=False)
        runner, self.gateway_url = await _site(simrs, self.config.server.listen,
                                               self._sockets[1], self.gateway_limits)
        self._runners.append(runner)
        log.info("Tenang listening for the SIMRS on %s, admin on %s", self.gateway_url,
                 self.admin_url)

    async def stop(self) -> None:
        """Stop intake first (in-progress intakes still finish their commit), then the
        relay with its grace period, then the store. Idempotent."""
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        sockets, self._sockets = self._sockets, []
        for sock in sockets:  # those bound but not yet served (a failed start)
            sock.close()
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        if self.callbacks is not None:  # after the relay: its last transitions queue some
            await self.callbacks.stop()
            self.callbacks = None
        if self.session is not None:
            await self.session.close()
            self.session = None
        await self.backpressure.close()
        await self.retention.stop()
        await self.maintenance.stop()
        await self.notifier.stop()
        for shared in self.shared_breakers:
            await shared.stop()
        await self.backend.close()
