"""The event loop Tenang runs on: uvloop where it is installed (Linux, macOS), else asyncio.

uvloop cuts the per-request cost of aiohttp's I/O path; Windows servers, where it does
not exist, run on the standard loop with the same behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def event_loop_name() -> str:
    loop = new_event_loop()
    try:
        return type(loop).__module__.split(".")[0]
    finally:
        loop.close()


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the preferred loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
