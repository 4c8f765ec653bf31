"""The callback sender: claims due outcome callbacks from the store and POSTs them.

It runs as its own task beside the relay and shares nothing with it but the store (the
relay only queues rows, inside the transition it commits anyway), so a slow or dead
receiver never holds up a delivery to BPJS. The retry schedule lives in the store
(``next_attempt_at``); nothing sleeps in memory between tries, and a restart resumes
where the store says. Delivery is at least once: a sender killed mid-POST leaves its
claim to expire, and the callback is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from proxy import signing
from proxy.config import Config
from proxy.delivery.callbacks import CALLBACK_ID_HEADER, REQUEST_ID_HEADER, next_attempt_at
from proxy.delivery.final_write import to_the_end
from proxy.http_timeouts import exact_timeout
from proxy.lifecycle import FINAL, Status
from proxy.store.errors import Conflict, StoreError
from proxy.store.protocols import Outbox
from proxy.store.records import StoredCallback

log = logging.getLogger("tenang.callbacks")

# POST (url, body, headers, timeout_s) -> HTTP status. Raises aiohttp.ClientError,
# TimeoutError or OSError when no answer came. Injectable so tests need no receiver.
Poster = Callable[[str, bytes, Mapping[str, str], float], Awaitable[int]]

# Never wait less than this between looks at the store, even if something is "due now"
# but could not be claimed: a floor against a hot loop.
_MIN_IDLE_S = 0.01


class CallbackSender:
    """``start()`` / ``await stop()`` (both idempotent); ``run_once()`` and ``drain()``
    send without the background task (tests, tools)."""

    def __init__(self, config: Config, store: Outbox, *,
                 clock: Callable[[], float] = time.time, post: Poster | None = None) -> None:
        self.settings = config.callbacks
        self.store = store
        self.clock = clock
        self._lease_margin_s = config.relay.lease_margin_s
        self._grace_s = min(config.callbacks.timeout_s, config.relay.shutdown_grace_s)
        self._secrets = {u.name: u.callback_secret for u in config.upstreams}
        self._unsigned = [u.name for u in config.upstreams
                          if u.callback_url and u.callback_secret_env and not u.callback_secret]
        self._calling_back = frozenset(u.name for u in config.upstreams if u.callback_url)
        self._post = post or self._aiohttp_post
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task. Idempotent."""
        if self._task is not None:
            return
        for name in self._unsigned:
            log.error("upstream %s: callback_secret_env is set but the variable is empty; "
                      "its callbacks go out unsigned", name, extra={"upstream": name})
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="callback-sender")

    def wake(self) -> None:
        """A callback was queued: look at the store now rather than at the next poll."""
        self._wakeup.set()

    def finished(self, upstream: str, request_id: str, status: Status, reason: str) -> None:
        """``Observer.finished``: a request's new state is stored. A final state of an
        upstream with a ``callback_url`` queued its callback in that transaction, so it
        goes out now; other reports (held, upstreams without callbacks) wake nothing."""
        if status in FINAL and upstream in self._calling_back:
            self.wake()

    async def stop(self) -> None:
        """Let the POSTs under way finish (up to the grace period), then stop. A POST cut
        short keeps its claim until the lease ends and is sent again. Idempotent."""
        task, self._task = self._task, None
        self._stopping = True
        self._wakeup.set()
        if task is not None:
            _, late = await asyncio.wait({task}, timeout=self._grace_s)
            for t in late:
                t.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while not self._stopping:
            sent = 0
            try:
                due = await self.store.next_callback_at()
                if due is None or due > self.clock():
                    # A read, not a claim: an idle Tenang must not commit (fsync) a write
                    # transaction every poll just to find nothing to send.
                    await self._idle(await self._until_due())
                    continue
                sent = await self.run_once()
                if sent < self.settings.batch:  # nothing more is due right now
                    await self._idle(await self._until_due())
            except StoreError as exc:
                log.error("callback sender: store error: %s", exc)
                await self._idle(self.settings.poll_interval_s)
            except Exception:
                # A bug must not stop every future callback for good.
                log.exception("callback sender: unexpected error; carrying on")
                await self._idle(self.settings.poll_interval_s)

    async def _until_due(self) -> float:
        due = await self.store.next_callback_at()
        wait = self.settings.poll_interval_s if due is None else due - self.clock()
        return min(max(wait, _MIN_IDLE_S), self.settings.poll_interval_s)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        self._wakeup.clear()

    # --- sending ------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim one batch of due callbacks and send them concurrently; returns how many."""
        now = self.clock()
        claimed = await self.store.claim_callbacks(
            now, self.settings.batch, now + self.settings.timeout_s + self._lease_margin_s)
        await asyncio.gather(*(self._send(cb) for cb in claimed))
        return len(claimed)

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Send until nothing is due now (later retries stay scheduled); returns how many
        were sent. Raises TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        total = 0
        while sent := await self.run_once():
            total += sent
            if time.monotonic() > deadline:
                raise TimeoutError(f"callbacks did not drain within {timeout_s} s")
        return total

    async def _send(self, cb: StoredCallback) -> None:
        context = {"request_id": cb.request_id, "upstream": cb.upstream}
        try:
            error = await self._attempt(cb)
        except Exception as exc:
            # Recorded as a failed try, so the row is not left leased for nothing.
            log.exception("callback %d: unexpected error while sending", cb.id, extra=context)
            error = f"unexpected error: {exc!r}"
        now = self.clock()
        retry_at = None if error is None else next_attempt_at(cb.attempts, self.settings, now)
        try:
            # Shielded: cut short by a stop, a POST already answered would be sent again.
            await to_the_end(self.store.finish_callback(cb.id, error is None, error,
                                                         retry_at, now))
        except Conflict:
            log.warning("callback %d finished elsewhere meanwhile", cb.id, extra=context)
            return
        except StoreError as exc:
            log.error("cannot record the result of callback %d (%s); it is sent again "
                      "when its lease ends", cb.id, exc, extra=context)
            return
        if error is None:
            log.info("callback %d for %s delivered", cb.id, cb.request_id, extra=context)
        elif retry_at is None:
            log.error("callback %d for %s given up after %d attempts: %s", cb.id,
                      cb.request_id, cb.attempts, error, extra=context)
        else:
            log.warning("callback %d for %s failed (attempt %d): %s; next try in %.0f s",
                        cb.id, cb.request_id, cb.attempts, error, retry_at - now,
                        extra=context)

    async def _attempt(self, cb: StoredCallback) -> str | None:
        """POST once; None on a 2xx answer, else what went wrong."""
        headers = {"Content-Type": "application/json", REQUEST_ID_HEADER: cb.request_id,
                   CALLBACK_ID_HEADER: str(cb.id)}
        secret = self._secrets.get(cb.upstream)
        if secret:
            headers[signing.HEADER] = signing.sign(secret, cb.payload, self.clock())
        timeout_s = self.settings.timeout_s
        try:
            status = await self._post(cb.url, cb.payload, headers, timeout_s)
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return None
        return f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400
                                   else "")

    async def _aiohttp_post(self, url: str, body: bytes, headers: Mapping[str, str],
                            timeout_s: float) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        # Redirects are not followed: a POST must not wander to an address nobody
        # configured, and a receiver that moved should be reconfigured.
        async with self._session.post(url, data=body, headers=headers, allow_redirects=False,
                                      timeout=exact_timeout(timeout_s)) as resp:
            return resp.status
