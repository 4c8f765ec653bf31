"""Nasty input on the admin port (issue 10.3): each gets a 4xx naming the problem, never a
500 (invalid UTF-8 in headers and forms, deep JSON, out-of-range numbers and ids)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.admin_ui.conftest import Browser, ui_config
from tests.conftest import StartTenang, admin_headers, make_config


async def raw_exchange(base_url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request written by hand (bytes aiohttp's client would not send); the status
    and body of the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b"Host: x\r\nConnection: close\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture
async def tenang(tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang) -> Any:
    return await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"\xc3\x28", b"Bearer " + b"\x80" * 40])
async def test_authorization_that_is_not_utf8_is_refused_401(tenang: Any,
                                                             value: bytes) -> None:
    status, body = await raw_exchange(
        tenang.admin_url, b"GET /api/v1/summary HTTP/1.1\r\nAuthorization: " + value + b"\r\n")
    assert status == 401 and b"not ASCII text" in body


async def test_session_cookie_that_is_not_utf8_is_not_logged_in(tenang: Any) -> None:
    status, body = await raw_exchange(
        tenang.admin_url, b"GET /api/v1/summary HTTP/1.1\r\nCookie: tenang_session=\xff\xfe\r\n")
    assert status == 401 and b"log in" in body


MAINT = "/api/v1/maintenance"


@pytest.mark.parametrize(("body", "status", "problem"), [
    (b'{"upstream":"antrean","reason":' + b"[" * 30_000 + b"]" * 30_000 + b"}", 400,
     "nested too deeply"),
    (b'{"upstream":"antrean","reason":"\xff"}', 400, "not UTF-8"),
    (b'{"upstream":"antrean","reason":"\\ud800"}', 400, "reason: not valid text"),
    (b'{"upstream":"antrean","reason":"r","duration_s":1e308}', 400, "duration_s"),
    (b'{"upstream":"antrean","reason":"r","duration_s":1e400}', 400, "duration_s"),
    (b'{"upstream":"antrean","reason":"r","starts_at":1e308}', 400, "starts_at"),
    (b'{"upstream":"antrean","reason":"r","starts_at":' + b"9" * 400 + b"}", 400, "starts_at"),
    (b'{"upstream":"antrean","reason":"r","ends_at":NaN}', 400, "ends_at"),
    (b'{"upstream":"antrean","reason":"r","ends_at":"9999-12-31T23:59:59-12:00"}', 400,
     "ends_at"),
    (b'{"upstream":"antrean","reason":"r","bogus":1}', 400, "unknown field 'bogus'"),
    (b"[1]", 400, "JSON object"),
    (b'{"upstream":', 400, "JSON object"),
    (b'{"reason":"' + b"x" * 70_000 + b'"}', 413, "larger than"),
])
async def test_maintenance_body_problems_are_named(tenang: Any, http: aiohttp.ClientSession,
                                                   body: bytes, status: int,
                                                   problem: str) -> None:
    async with http.post(tenang.admin_url + MAINT, data=body,
                         headers=admin_headers()) as resp:
        assert resp.status == status
        assert problem in (await resp.json())["error"]
    async with http.get(tenang.admin_url + MAINT, headers=admin_headers()) as resp:
        assert (await resp.json())["items"] == []  # nothing was scheduled


@pytest.mark.parametrize("window_id", ["999999999999999999999", "9223372036854775808",
                                       "0", "²", "\u0661"])
async def test_cancel_of_an_impossible_window_id_is_404(tenang: Any,
                                                        http: aiohttp.ClientSession,
                                                        window_id: str) -> None:
    async with http.post(f"{tenang.admin_url}{MAINT}/{window_id}/cancel",
                         headers=admin_headers()) as resp:
        assert resp.status == 404
        assert "no maintenance window" in (await resp.json())["error"]


@pytest.mark.parametrize("limit", ["²", "\u0661", "99999999999999999999999", "0"])
async def test_request_list_limit_out_of_range_is_400(tenang: Any, http: aiohttp.ClientSession,
                                                      limit: str) -> None:
    async with http.get(f"{tenang.admin_url}/api/v1/requests", params={"limit": limit},
                        headers=admin_headers()) as resp:
        assert resp.status == 400
        assert "limit" in (await resp.json())["error"]


def multipart(fields: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "tenangboundary"
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
        + v + b"\r\n" for k, v in fields.items())
    return parts + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def test_multipart_login_with_an_invalid_utf8_field_is_400(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        browsers: Any) -> None:
    tenang = await start_tenang(ui_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    browser: Browser = browsers(tenang.admin_url)
    token = await browser.login_form()
    body, content_type = multipart({"csrf_token": token.encode(), "name": b"adi\xff",
                                    "password": b"x"})
    async with browser.http.post(tenang.admin_url + "/login", data=body,
                                 headers={"Content-Type": content_type},
                                 allow_redirects=False) as resp:
        assert resp.status == 400
        assert "UTF-8" in await resp.text()
    # A proper login still works afterwards.
    assert await browser.login("adi") == 303


async def test_form_post_with_an_invalid_utf8_field_is_400_when_logged_in(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        browsers: Any) -> None:
    tenang = await start_tenang(ui_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    browser: Browser = browsers(tenang.admin_url)
    assert await browser.login("adi") == 303
    body, content_type = multipart({"csrf_token": browser.csrf.encode(),
                                    "reason": b"\xff\xfe"})
    async with browser.http.post(tenang.admin_url + "/maintenance", data=body,
                                 headers={"Content-Type": content_type},
                                 allow_redirects=False) as resp:
        assert resp.status == 400
        assert "UTF-8" in await resp.text()




@pytest.mark.parametrize("limit", ["\u00b2", "\u0661", "9" * 30, "0", "-1"])
async def test_request_log_page_size_that_is_not_a_number_falls_back(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang, browsers: Any,
        limit: str) -> None:
    tenang = await start_tenang(ui_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    browser: Browser = browsers(tenang.admin_url)
    assert await browser.login("adi") == 303
    status, _, _ = await browser.get("/requests", params={"limit": limit})
    assert status == 200


@pytest.mark.parametrize("expected", ["\u00b2", "9" * 30, "", "-3"])
async def test_bulk_retry_with_an_impossible_expected_count_is_400(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang, browsers: Any,
        expected: str) -> None:
    tenang = await start_tenang(ui_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    browser: Browser = browsers(tenang.admin_url)
    assert await browser.login("adi") == 303
    status, _, _ = await browser.post("/bulk", {"status": "dead", "expected": expected})
    assert status == 400
