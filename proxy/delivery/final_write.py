"""Final writes run to their end even when the task awaiting them is cancelled.

When Tenang stops (SIGTERM, the relay cutting late sends short after its grace period)
a task may be cancelled while it persists what it already knows: an attempt's outcome, a
reconciliation's finding, a callback's result. Cut short half-way, that write is lost (on
PostgreSQL the transaction rolls back; on SQLite the observer never hears of it) and
after the restart the known answer is taken for an interrupted send and sent again. As
arq's ``run_job`` and procrastinate's worker do, the write runs shielded in a task of its
own; a cancellation waits for it to end and is raised again afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def to_the_end(write: Coroutine[Any, Any, T], *,
                     on_cancel: Callable[[], None] | None = None) -> T:
    """Await ``write`` to its end; a cancellation meanwhile (told to ``on_cancel``, e.g.
    to stop retrying a locked store) is raised once it is done, never swallowed."""
    task = asyncio.ensure_future(write)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError as exc:
            if task.done():  # the write itself was cancelled (the loop is closing)
                raise
            cancelled = exc
            if on_cancel is not None:
                on_cancel()
    if cancelled is not None:
        raise cancelled
    return result
