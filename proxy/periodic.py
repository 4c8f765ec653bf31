"""A background task that runs one step over and over: at once, then again after a wait
its owner computes from what the step left, or sooner when poked. The shared breaker's
sync (``delivery.shared_breaker``) and the maintenance windows' reload
(``ops.maintenance``) are such loops, and so is the daily purge's look at the clock
(``ops.retention``).

A step that fails does not end the loop: an expected failure (the store not answering)
is logged in one line and the next step tries again; anything else is a bug, logged
with its traceback, and the loop carries on, since a stopped loop would leave a breaker
or a window as it last was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    """``step`` in a loop; ``start`` it once, ``await stop()`` it (idempotent)."""

    def __init__(self, name: str, step: Callable[[], Awaitable[None]],
                 wait_s: Callable[[], float], log: logging.Logger, *,
                 expected: tuple[type[Exception], ...] = (), failed: str = "",
                 level: int = logging.WARNING) -> None:
        self.name = name
        self._step = step
        self._wait_s = wait_s
        self._log = log
        self._expected = expected  # none: the step handles its own
        self._failed = failed  # what an expected failure means, for its log line
        self._level = level
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Run the next step now (or right after the one running)."""
        self._poke.set()

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            # Cleared before the step: a poke while it runs is for a step after it.
            self._poke.clear()
            try:
                await self._step()
            except self._expected as exc:
                self._log.log(self._level, "%s: %s", self._failed, exc)
            except Exception:
                self._log.exception("%s: unexpected error; carrying on", self.name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wait_s()):
                    await self._poke.wait()
