"""Shared harness: the BPJS simulator over loopback, real SQLite files, and
Tenang itself on ephemeral ports. Synchronise by polling with a deadline, never sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.bpjs.simulator import SimConfig
from proxy.bpjs.simulator.harness import RunningSimulator, start_simulator
from proxy.config import Config, parse_config
from tests.signing import TEST_CONS_ID, TEST_SECRET, TEST_SECRET_ENV, signing_session

ADMIN_TOKEN = "test-admin-token"


async def wait_until(predicate: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0,
                     interval_s: float = 0.02, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


class FakeClock:
    """A clock tests move by hand: ``clock.now = ...``; call it for the time."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(tmp_path: Path, base_url: str, /, **upstream: Any) -> Config:
    """A config on ephemeral ports with one Antrean-like upstream at ``base_url``.

    Keyword arguments override upstream keys (None removes one); ``retry``/``breaker``/
    ``rate`` dicts merge;
    ``env`` adds environment variables (secrets), ``relay``/``server``/``store``/``audit``
    set those sections.
    """
    up: dict[str, Any] = {
        "name": "antrean", "prefix": "/antreanrs", "target": base_url + "/antreanrs",
        "preset": "antrean", "timeout_s": 2.0,
        "cons_id": TEST_CONS_ID, "secret_env": TEST_SECRET_ENV,
        "retry": {"max_attempts": 5, "initial_delay_s": 0.05, "max_delay_s": 0.2,
                  "jitter": "none"},
        "breaker": {"fail_max": 3, "reset_timeout_s": 0.5},
        "rate": {"per_second": 10_000.0, "max_concurrency": 64},
    }
    relay = upstream.pop("relay", {})
    server = upstream.pop("server", {})
    store = upstream.pop("store", {})
    audit = upstream.pop("audit", {})
    env: dict[str, str] = upstream.pop("env", {})
    for key, value in upstream.items():
        if value is None:
            up.pop(key, None)  # e.g. secret_env=None: an upstream that does not re-sign
        elif isinstance(value, dict):
            up[key] = {**up.get(key, {}), **value}
        else:
            up[key] = value
    raw = {
        "server": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", **server},
        "store": {"url": "sqlite:///./tenang.db", **store},
        "relay": {"poll_interval_s": 0.05, "lease_margin_s": 1.0, "shutdown_grace_s": 2.0,
                  **relay},
        "upstreams": [up],
        "audit": audit,
    }
    return parse_config(raw, tmp_path, {"TENANG_ADMIN_TOKEN": ADMIN_TOKEN,
                                        TEST_SECRET_ENV: TEST_SECRET, **env})


StartTenang = Callable[..., Awaitable[Tenang]]  # the start_tenang fixture's type


@pytest.fixture
async def start_tenang() -> AsyncIterator[StartTenang]:
    """Factory: ``await start_tenang(config)`` starts Tenang; all are stopped at the end."""
    started: list[Tenang] = []

    async def start(config: Config, **kwargs: Any) -> Tenang:
        tenang = Tenang(config, **kwargs)
        await tenang.start()
        started.append(tenang)
        return tenang

    yield start
    for tenang in started:
        await tenang.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that signs as the test SIMRS (tests/signing.py) unless a test sends its
    own BPJS headers."""
    async with signing_session() as session:
        yield session


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# -- BPJS simulator ----------------------------------------------------------------------

SIM_CONS_ID = TEST_CONS_ID
SIM_SECRET = TEST_SECRET


@pytest.fixture
async def bpjs_sim() -> AsyncIterator[RunningSimulator]:
    """The BPJS simulator in-process on 127.0.0.1 (any port), mode ``up``.

    Yields a ``RunningSimulator``: ``.url``, ``.cons_id``, ``.secret``, ``.state`` (set
    ``.state.clock`` to move its clock), ``signed_headers(service)``, ``decrypt(answer,
    headers)``, and async ``set_mode(mode, **settings)``, ``fault(path_contains, action,
    ...)``, ``log(path_contains=, outcome=, method=)``, ``snapshot()``, ``reset()``.
    """
    sim = await start_simulator(SimConfig(cons_id=SIM_CONS_ID, secret=SIM_SECRET))
    yield sim
    await sim.close()
