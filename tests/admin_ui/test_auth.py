"""Admin UI auth over real HTTP: redirects, 401s, login, lockout, cookies, CSRF, roles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.lifecycle import Status
from tests.admin_ui.conftest import PASSWORD, Browser, submit
from tests.admin_ui.helpers import settle
from tests.conftest import admin_headers

RID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
PAGES = ["/", "/requests", f"/requests/{RID}", "/requests.csv", "/bulk", "/bulk/1",
         "/requests?status=dead&q=x"]
POSTS = [f"/requests/{RID}/retry", f"/requests/{RID}/cancel", "/bulk", "/logout",
         "/maintenance", "/maintenance/1/cancel"]
API = [("GET", "/api/v1/summary"), ("GET", "/api/v1/requests"),
       ("GET", f"/api/v1/requests/{RID}"), ("POST", f"/api/v1/requests/{RID}/retry"),
       ("POST", f"/api/v1/requests/{RID}/cancel"), ("GET", "/api/v1/maintenance")]


async def test_every_page_redirects_to_login_without_a_session(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    for path in PAGES:
        status, _, resp = await b.get(path)
        assert status == 303, path
        assert resp.headers["Location"].startswith("/login?next="), path
    for path in POSTS:
        status, _, resp = await b.post(path, csrf=False)
        assert status == 303, path
        assert resp.headers["Location"].startswith("/login"), path
    for path in ("/ui/dashboard.json", "/ui/chart/antrean.svg", "/bulk/1.json"):
        status, _, _ = await b.get(path)
        assert status == 401, path


async def test_a_forged_or_expired_session_cookie_is_no_session(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    status, _, _ = await b.get("/", cookies={"tenang_session": "made-up"})
    assert status == 303


async def test_every_api_call_is_401_without_session_or_token(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    for method, path in API:
        async with b.http.request(method, ui.admin_url + path) as resp:
            assert resp.status == 401, (method, path)
            assert "error" in await resp.json()


async def test_login_redirects_back_and_sets_a_strict_http_only_cookie(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    status, page, _ = await b.get("/requests?status=dead")
    assert status == 303
    token = await b.login_form("/login?next=%2Frequests%3Fstatus%3Ddead")
    status, _, resp = await b.submit_login("vera", PASSWORD, token, "/requests?status=dead")
    assert status == 303
    assert resp.headers["Location"] == "/requests?status=dead"
    cookie = resp.cookies["tenang_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == int(ui.config.admin.session_ttl_s)
    status, page, _ = await b.get("/requests?status=dead")
    assert status == 200 and "vera" in page


OFF_SITE = ["https://evil.example/", "//evil.example/x", "/\\evil.example",
            "javascript:alert(1)", "/\t/evil.example", "/\r\n/evil.example", "/ /evil.example"]


@pytest.mark.parametrize("target", OFF_SITE)
async def test_login_never_redirects_off_site(ui: Tenang, browsers: Callable[[str], Browser],
                                              target: str) -> None:
    b = browsers(ui.admin_url)
    status, _, resp = await b.submit_login("vera", PASSWORD, await b.login_form(), target)
    assert status == 303 and resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", OFF_SITE)
async def test_the_language_switch_never_redirects_off_site(
        ui: Tenang, browsers: Callable[[str], Browser], target: str) -> None:
    status, _, resp = await browsers(ui.admin_url).get("/lang/en", params={"next": target})
    assert status == 303 and resp.headers["Location"] == "/"


async def test_login_form_needs_its_csrf_token(ui: Tenang,
                                               browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    await b.get("/login")
    status, _, _ = await b.post("/login", {"name": "vera", "password": PASSWORD}, csrf=False)
    assert status == 403
    status, _, _ = await b.post("/login", {"name": "vera", "password": PASSWORD,
                                           "csrf_token": "guess"}, csrf=False)
    assert status == 403


async def test_wrong_password_five_times_locks_the_user(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    for _ in range(4):
        assert await b.login("opa", "wrong-password") == 401
    assert await b.login("opa") == 303, "four failures do not lock"
    b = browsers(ui.admin_url)
    for _ in range(5):
        assert await b.login("opa", "wrong-password") == 401

    again = browsers(ui.admin_url)
    assert await again.login("opa") == 401, "locked: even the right password is refused"
    user = await ui.backend.accounts.get_user("opa")
    assert user is not None and user.locked_until is not None
    assert user.locked_until == pytest.approx(time.time() + 900, abs=30)
    entries = await ui.backend.audit.audit_entries(limit=30)
    actions = [(e.actor, e.action, e.detail) for e in entries]
    assert ("opa", "login_failed", "locked after repeated failures") in actions
    assert ("opa", "login_refused", "locked") in actions
    assert ("opa", "login", None) in actions


async def test_guesses_sent_in_parallel_cannot_get_past_the_lockout(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    token = await b.login_form()
    # 30 wrong guesses at once, on one login page's token.
    statuses = await asyncio.gather(*(b.submit_login("adi", f"guess-{i}", token)
                                      for i in range(30)))
    assert [status for status, _, _ in statuses] == [401] * 30
    actions = [e.action for e in await ui.backend.audit.audit_entries(limit=100)
               if e.actor == "adi"]
    # Only as many passwords were checked as the lockout allows; the rest were refused
    # unread, and now even the right password is.
    lock_after = ui.config.admin.lockout_after
    assert (actions.count("login_failed"), actions.count("login_refused")) == (
        lock_after, 30 - lock_after)
    status, text, _ = await b.submit_login("adi", PASSWORD, await b.login_form())
    assert status == 401 and "Akun dikunci" in text


async def test_a_lockout_looks_the_same_for_names_that_do_not_exist(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    pages = {}
    for name in ("adi", "nobody-here"):
        b = browsers(ui.admin_url)
        for _ in range(ui.config.admin.lockout_after):
            assert await b.login(name, "nope-nope") == 401
        status, text, _ = await b.submit_login(name, "nope-nope", await b.login_form())
        pages[name] = (status, "Akun dikunci" in text)
    assert pages == {"adi": (401, True), "nobody-here": (401, True)}
    actions = [(e.actor, e.action, e.detail)
               for e in await ui.backend.audit.audit_entries(limit=30)]
    assert ("nobody-here", "login_failed", "unknown user; locked after repeated failures") \
        in actions
    assert ("nobody-here", "login_refused", "locked") in actions


async def test_locked_message_names_the_time(ui: Tenang,
                                             browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    for _ in range(5):
        await b.login("adi", "nope-nope")
    status, text, _ = await b.submit_login("adi", PASSWORD, await b.login_form())
    assert status == 401
    assert "Akun dikunci" in text and "WIB" in text


async def test_unknown_user_and_wrong_password_look_the_same(
        ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    b = browsers(ui.admin_url)
    pages = []
    for name in ("nobody", "vera"):
        status, text, _ = await b.submit_login(name, "wrong-one", await b.login_form())
        pages.append((status, "Nama pengguna atau kata sandi salah" in text))
    assert pages == [(401, True), (401, True)]


async def test_logout_ends_the_session_server_side(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    b = await as_role("vera")
    cookie = next(c.value for c in b.http.cookie_jar if c.key == "tenang_session")
    status, _, resp = await b.post("/logout")
    assert status == 303 and resp.headers["Location"] == "/login"
    status, _, _ = await b.get("/")
    assert status == 303
    async with aiohttp.ClientSession() as replay, replay.get(  # the old cookie, elsewhere
            ui.admin_url + "/", cookies={"tenang_session": cookie},
            allow_redirects=False) as resp:
        assert resp.status == 303
    actions = [e.action for e in await ui.backend.audit.audit_entries()]
    assert actions[0] == "logout"


async def test_posts_without_the_csrf_token_are_403(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-CSRF"}')
    b = await as_role("adi")
    for path in (f"/requests/{request_id}/retry", f"/requests/{request_id}/cancel", "/bulk",
                 "/logout", "/maintenance", "/maintenance/1/cancel"):
        status, _, _ = await b.post(path, csrf=False)
        assert status == 403, path
        status, _, _ = await b.post(path, {"csrf_token": "not-the-token"}, csrf=False)
        assert status == 403, path
    stored = await ui.backend.log.get(request_id)
    assert stored is not None and stored.status is Status.PENDING, "nothing happened"
    status, _, _ = await b.get("/")
    assert status == 200, "still logged in: the logout without a token did nothing"


async def test_a_viewer_cannot_retry_cancel_or_export(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-VIEW"}')
    await settle(ui.backend, request_id, Status.DEAD)
    b = await as_role("vera")
    status, page, _ = await b.get(f"/requests/{request_id}")
    assert status == 200 and 'id="retry"' not in page and 'id="cancel"' not in page
    for path in (f"/requests/{request_id}/retry", f"/requests/{request_id}/cancel", "/bulk"):
        status, _, _ = await b.post(path)
        assert status == 403, path
    for path in ("/requests.csv", "/bulk"):
        status, _, _ = await b.get(path)
        assert status == 403, path
    stored = await ui.backend.log.get(request_id)
    assert stored is not None and stored.status is Status.DEAD


async def test_roles_allow_what_they_should(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    expect = {  # name: (csv export, bulk dry run)
        "vera": (403, 403), "opa": (403, 200), "audi": (200, 403), "adi": (200, 200)}
    for name, (csv_status, bulk_status) in expect.items():
        b = await as_role(name)
        assert (await b.get("/requests.csv"))[0] == csv_status, name
        assert (await b.get("/bulk"))[0] == bulk_status, name


async def test_the_api_accepts_a_session_and_wants_its_csrf_header_for_changes(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], http: aiohttp.ClientSession
        ) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-API"}')
    await settle(ui.backend, request_id, Status.FAILED)
    viewer, operator = await as_role("vera"), await as_role("opa")
    url = f"{ui.admin_url}/api/v1/requests/{request_id}"
    async with viewer.http.get(url) as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "failed"
    async with operator.http.post(url + "/retry") as resp:
        assert resp.status == 403, "no X-CSRF-Token"
    async with viewer.http.post(url + "/retry", headers={"X-CSRF-Token": viewer.csrf}) as resp:
        assert resp.status == 403, "a viewer may not retry"
    async with operator.http.post(url + "/retry",
                                  headers={"X-CSRF-Token": operator.csrf}) as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "pending"
    async with operator.http.get(url, headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401, "a wrong token is not rescued by the session"
    (entry, *_) = await ui.backend.audit.audit_entries(target=request_id)
    assert (entry.actor, entry.action, entry.detail) == ("opa", "retry", "failed -> pending")


async def test_the_bearer_token_still_works_and_is_audited(
        ui: Tenang, http: aiohttp.ClientSession) -> None:
    request_id = await submit(http, ui.gateway_url, b'{"kodebooking": "KB-TOKEN"}')
    async with http.post(f"{ui.admin_url}/api/v1/requests/{request_id}/cancel",
                         headers=admin_headers()) as resp:
        assert resp.status == 200
    (entry, *_) = await ui.backend.audit.audit_entries(target=request_id)
    assert (entry.actor, entry.action) == ("api-token", "cancel")


async def test_config_users_are_written_to_the_store(ui: Tenang) -> None:
    for name, role in (("vera", "viewer"), ("adi", "admin")):
        user = await ui.backend.accounts.get_user(name)
        assert user is not None and user.role == role
