"""Admin UI fixtures: Tenang on loopback with one user per role, and logged-in clients.

Password hashes use cheap argon2 parameters so the tests stay fast; verification reads
the parameters from the hash, so the production code path is the same.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from argon2 import PasswordHasher

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import AdminUserConfig, Config
from tests.bpjs_support import bpjs_config
from tests.conftest import make_config

PASSWORD = "rahasia-sekali-123"
ROLES = {"vera": "viewer", "opa": "operator", "audi": "auditor", "adi": "admin"}
_cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
HASH = _cheap.hash(PASSWORD)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def with_ui_users(config: Config) -> Config:
    """``config`` plus one admin UI user per role (all with PASSWORD), a fast UI refresh
    and an unpaced bulk retry."""
    users = tuple(AdminUserConfig(name, role, HASH)  # type: ignore[arg-type]
                  for name, role in ROLES.items())
    admin = dataclasses.replace(config.admin, users=users, ui_refresh_s=0.2,
                                bulk_interval_s=0.0, bulk_batch=2)
    return dataclasses.replace(config, admin=admin)


def ui_config(tmp_path: Path, base_url: str, **upstream: Any) -> Config:
    """make_config (one Antrean-like upstream at ``base_url``) with the UI users."""
    return with_ui_users(make_config(tmp_path, base_url, **upstream))


def bpjs_ui_config(tmp_path: Path, sim: RunningSimulator, **upstream: Any) -> Config:
    """Antrean at the BPJS simulator, as in production (preset, cons_id, and the secret
    so Tenang re-signs each delivery), with the UI users."""
    return with_ui_users(bpjs_config(tmp_path, sim, **upstream))


class Browser:
    """An HTTP client with its own cookie jar, like one browser profile."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = session
        self.csrf = ""

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, allow_redirects=False, **kwargs) as resp:
            return resp.status, await resp.text(), resp

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True,
                   **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        async with self.http.post(self.base + path, data=form, allow_redirects=False,
                                  **kwargs) as resp:
            return resp.status, await resp.text(), resp

    async def login_form(self, path: str = "/login") -> str:
        """Open the login page (``path`` may carry ``?next=``); its form's CSRF token."""
        status, page, _ = await self.get(path)
        assert status == 200
        token = CSRF.search(page)
        assert token, "login form without a CSRF token"
        return token.group(1)

    async def submit_login(self, name: str, password: str, token: str, next_path: str = "/"
                           ) -> tuple[int, str, aiohttp.ClientResponse]:
        """POST the login form as the browser would (no redirect followed)."""
        async with self.http.post(self.base + "/login", allow_redirects=False, data={
                "name": name, "password": password, "csrf_token": token,
                "next": next_path}) as resp:
            return resp.status, await resp.text(), resp

    async def login(self, name: str, password: str = PASSWORD) -> int:
        result, _, _ = await self.submit_login(name, password, await self.login_form())
        if result == 303:
            status, page, _ = await self.get("/")
            found = CSRF.search(page)
            assert status == 200 and found
            self.csrf = found.group(1)
        return result


@pytest.fixture
async def browsers() -> AsyncIterator[Callable[[str], Browser]]:
    sessions: list[aiohttp.ClientSession] = []

    def make(base: str) -> Browser:
        # unsafe=True: aiohttp's cookie jar otherwise ignores cookies from IP addresses.
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return Browser(base, session)

    yield make
    for s in sessions:
        await s.close()


@pytest.fixture
async def ui(tmp_path: Path, bpjs_sim: RunningSimulator,
             start_tenang: Callable[..., Awaitable[Tenang]]) -> Tenang:
    """Tenang configured for the BPJS simulator with the relay off: requests stay where
    the test puts them (``tests.admin_ui.helpers.settle``); nothing is delivered."""
    return await start_tenang(bpjs_ui_config(tmp_path, bpjs_sim), relay_enabled=False)


@pytest.fixture
async def as_role(ui: Tenang, browsers: Callable[[str], Browser]
                  ) -> Callable[[str], Awaitable[Browser]]:
    async def login(name: str) -> Browser:
        b = browsers(ui.admin_url)
        assert await b.login(name) == 303
        return b

    return login


async def submit(http: aiohttp.ClientSession, gateway_url: str, body: bytes | str,
                 path: str = "/antreanrs/antrean/add") -> str:
    """Send one SIMRS write through intake; the stored request's id."""
    async with http.post(gateway_url + path, data=body,
                         headers={"Content-Type": "application/json",
                                  "user_key": "9f8e7d6c5b4a39281706"}) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["X-Tenang-Request-Id"]
