"""Admin notifications: conditions from ``notify_rules``, sent through ``notify_channels``.

Events arrive synchronously from the breakers and the relay and must never block them:
they only decide (pure rules) and put messages on a bounded queue; a sender task
delivers each message to every channel, retrying with backoff (tenacity). When the
queue is full the oldest message is dropped and counted. A checker task evaluates the
time-based conditions (open circuit, backlog age) every ``check_interval_s``.

Several instances on one store each watch the conditions (each has its breakers, its
dead requests, the shared backlog), so each would page. Before sending, the sender
claims the message in the store (``Claims``, the store's ``Notices`` role): one claim
per condition, upstream and ``window_s`` wins among all instances, and one all-clear
per claimed alert. So an operator gets one page per incident, and no leader has to be
alive for it: if the instance that paged "open" dies, another still pages "recovered",
and the next incident is paged by whoever sees it. (A leader by advisory lock would
page once too, but the dead and held requests another instance saw would not reach it,
and a new leader would not know what the old one had told.) A dead/held batch that
loses the claim is counted into that instance's next one. When the store cannot be
asked, the message goes out anyway: a page twice beats none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from proxy.config_ops import NotifyConfig
from proxy.lifecycle import Status
from proxy.observe.notify_channels import Channel, SendError
from proxy.observe.notify_rules import Message, Rules
from proxy.policies.breaker import BreakerState
from proxy.store.errors import StoreError
from proxy.store.records import UpstreamSummary

log = logging.getLogger("tenang.notify")

QuietCheck = Callable[[str, float], bool]  # (upstream, now) -> in maintenance
SummarySource = Callable[[], Awaitable[Mapping[str, UpstreamSummary]]]
ResultHook = Callable[[str, str], None]  # (channel, "sent" | "failed" | "dropped")


class Claims(Protocol):
    """The store's ``Notices`` role, as far as the notifier needs it (observe does not
    import the store's protocols: it is fed, never feeding)."""

    async def claim_notice(self, condition: str, upstream: str, at: float,
                           window_s: float) -> bool: ...

    async def claim_all_clear(self, condition: str, upstream: str) -> bool: ...


def _never_quiet(upstream: str, now: float) -> bool:
    return False


def _retryable(exc: BaseException) -> bool:
    return not (isinstance(exc, SendError) and exc.permanent)


class Notifier:
    """``start()``, feed events, ``await stop()``. Event methods are safe to call from
    any coroutine or callback on the loop and return at once."""

    def __init__(self, config: NotifyConfig, channels: Sequence[Channel], *,
                 clock: Callable[[], float] = time.time, quiet: QuietCheck = _never_quiet,
                 summary: SummarySource | None = None,
                 on_result: ResultHook | None = None, claims: Claims | None = None) -> None:
        """``claims``: who sends when several instances watch (None: this one alone)."""
        self.config = config
        self.claims = claims
        self.channels = list(channels)
        self.rules = Rules(config)
        self.clock = clock
        self.quiet = quiet
        self.summary = summary
        self.on_result = on_result
        self.dropped = 0
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=config.queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    # --- events (synchronous, never block) ---------------------------------------------

    def breaker_changed(self, upstream: str, old: BreakerState, new: BreakerState) -> None:
        """A breaker's ``on_change`` listener."""
        self._enqueue(self.rules.breaker_changed(upstream, old, new, self.clock()))

    def request_finished(self, upstream: str, request_id: str, status: Status,
                         reason: str) -> None:
        """A request reached ``status`` (only dead and held are told)."""
        now = self.clock()
        self._enqueue(self.rules.request_finished(upstream, request_id, status, reason, now,
                                                  self.quiet(upstream, now)))

    async def check(self) -> None:
        """One pass over the time-based conditions (the checker task calls this)."""
        if not self.channels:
            return  # nobody to tell: no store read either
        now = self.clock()
        ages: dict[str, float | None] = {}
        if self.summary is not None:
            try:
                summary = await self.summary()
            except StoreError as exc:
                log.error("notify: store summary unavailable: %s", exc)
            else:
                ages = {name: None if s.oldest_pending_at is None
                        else now - s.oldest_pending_at for name, s in summary.items()}
        self._enqueue(self.rules.check(now, ages, lambda up: self.quiet(up, now)))

    def _enqueue(self, messages: list[Message]) -> None:
        if not self.channels:
            return
        for message in messages:
            while True:
                try:
                    self._queue.put_nowait(message)
                    break
                except asyncio.QueueFull:
                    old = self._queue.get_nowait()
                    self._queue.task_done()
                    self.dropped += 1
                    log.warning("notification queue full: dropped %s for %s (%d dropped so "
                                "far)", old.kind.value, old.upstream, self.dropped,
                                extra={"upstream": old.upstream})
                    self._result("queue", "dropped")

    # --- sending ----------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                if await self._claimed(message):
                    await asyncio.gather(*(self._send(ch, message)
                                           for ch in self.channels))
            finally:
                self._queue.task_done()

    async def _claimed(self, message: Message) -> bool:
        """Whether this instance sends ``message`` (no other sent it for this incident)."""
        if self.claims is None:
            return True
        kind = message.kind
        try:
            if kind.all_clear:
                won = await self.claims.claim_all_clear(kind.condition, message.upstream)
            else:
                won = await self.claims.claim_notice(kind.condition, message.upstream,
                                                     message.at, self.config.window_s)
        except StoreError as exc:
            log.warning("notify: cannot ask the store whether another instance sent %s for "
                        "%s (%s); sending it", kind.value, message.upstream, exc,
                        extra={"upstream": message.upstream})
            return True
        if not won:
            log.info("notify: %s for %s was sent by another instance", kind.value,
                     message.upstream, extra={"upstream": message.upstream})
            self.rules.held_back(message)
        return won

    async def _send(self, channel: Channel, message: Message) -> None:
        assert self._session is not None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.retry_attempts),
            wait=wait_exponential(multiplier=self.config.retry_initial_delay_s,
                                  max=self.config.retry_max_delay_s),
            retry=retry_if_exception(_retryable), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    await channel.send(message, self._session)
        except SendError as exc:
            log.error("notification %s for %s not sent via %s: %s", message.kind.value,
                      message.upstream, channel.name, exc, extra={"upstream": message.upstream})
            self._result(channel.name, "failed")
        except Exception:
            # A broken channel must not stop the sender task (and with it every channel).
            log.exception("notification via %s failed unexpectedly", channel.name)
            self._result(channel.name, "failed")
        else:
            self._result(channel.name, "sent")

    def _result(self, channel: str, result: str) -> None:
        if self.on_result is not None:
            self.on_result(channel, result)

    async def _checker(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval_s)
            try:
                await self.check()
            except Exception:
                log.exception("notify check failed; carrying on")

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, *, periodic: bool = True) -> None:
        """Start the sender (and, unless ``periodic`` is False, the checker). Idempotent.
        Without a channel there is no checker: it would read the store every
        ``check_interval_s`` for conditions nobody is told of."""
        if self._tasks:
            return
        self._session = aiohttp.ClientSession()
        self._tasks.append(asyncio.create_task(self._sender(), name="notify-sender"))
        if periodic and self.channels:
            self._tasks.append(asyncio.create_task(self._checker(), name="notify-checker"))

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued message has been sent or given up on."""
        async with asyncio.timeout(timeout_s):
            await self._queue.join()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Give queued messages ``grace_s`` to go out, then stop. Idempotent."""
        tasks, self._tasks = self._tasks, []
        if tasks and self.channels and not self._queue.empty():
            with contextlib.suppress(TimeoutError):
                await self.flush(grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
