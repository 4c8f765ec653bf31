"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium, never a
downloaded browser). Skipped, with the reason, only when that binary is absent."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect

from proxy.app import Tenang
from proxy.bpjs.simulator.harness import RunningSimulator
from tests.admin_ui.conftest import PASSWORD, bpjs_ui_config
from tests.bpjs_support import booking

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()  # checked once, at collection
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# `make screenshots` points this at docs/screenshots to refresh the README's pictures;
# otherwise a test run writes them to its temporary directory and leaves the tree clean.
SCREENSHOTS_ENV = "TENANG_SCREENSHOTS"

expect.set_options(timeout=15_000)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        await browser.close()


class Session:
    """One browser tab plus what it saw: every JavaScript dialog that opened."""

    def __init__(self, page: Page, base: str, shots: Path) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def login(self, name: str, password: str = PASSWORD) -> None:
        await self.page.goto(self.base + "/")
        await expect(self.page).to_have_url(re.compile(r"/login\?next="))
        await self.page.get_by_label("Nama pengguna").fill(name)
        await self.page.get_by_label("Kata sandi").fill(password)
        await self.page.get_by_role("button", name="Masuk").click()
        await expect(self.page).to_have_url(self.base + "/")

    async def screenshot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        shot = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG"), shot


@pytest.fixture
async def tenang(tmp_path: Path, bpjs_sim: RunningSimulator,
                 start_tenang: Callable[..., Awaitable[Tenang]]) -> Tenang:
    """Tenang in front of the BPJS simulator (Antrean, re-signing with the consumer
    secret), its relay running; the breaker stays open a minute once tripped, so the
    dashboard can be read while it is open."""
    config = bpjs_ui_config(tmp_path, bpjs_sim,
                            breaker={"fail_max": 3, "reset_timeout_s": 60.0},
                            retry={"max_attempts": 8, "initial_delay_s": 0.05,
                                   "max_delay_s": 0.2})
    return await start_tenang(config)


@pytest.fixture
async def tab(chromium: Browser, tenang: Tenang, tmp_path: Path) -> AsyncIterator[Session]:
    context = await chromium.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    yield Session(page, tenang.admin_url, shots)
    await context.close()


class Simrs:
    """The hospital system: signs its Antrean calls as for BPJS and sends them to Tenang."""

    def __init__(self, http: aiohttp.ClientSession, sim: RunningSimulator,
                 tenang: Tenang) -> None:
        self.http, self.sim, self.tenang = http, sim, tenang

    async def send(self, path: str, body: dict[str, Any] | str) -> str:
        """POST ``body`` (a dict as JSON, a str as is) to Tenang; the stored request's id."""
        data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        async with self.http.post(self.tenang.gateway_url + "/antreanrs/" + path,
                                  data=data.encode(),
                                  headers=self.sim.signed_headers("antrean", method="POST")
                                  ) as resp:
            assert resp.status == 202, await resp.text()
            return resp.headers["X-Tenang-Request-Id"]

    async def add(self, kode: str, **extra: Any) -> str:
        return await self.send("antrean/add", booking(kode, **extra))

    async def add_at_bpjs(self, kode: str) -> None:
        """A booking that reaches BPJS without Tenang (made in Mobile JKN, or by another
        system), so a later call about it is accepted."""
        async with self.http.post(self.sim.url + "/antreanrs/antrean/add",
                                  data=json.dumps(booking(kode)),
                                  headers=self.sim.signed_headers("antrean", method="POST")
                                  ) as resp:
            answer = await resp.json(content_type=None)
        assert answer["metadata"]["code"] == 200, answer


@pytest.fixture
def simrs(http: aiohttp.ClientSession, bpjs_sim: RunningSimulator, tenang: Tenang) -> Simrs:
    return Simrs(http, bpjs_sim, tenang)
