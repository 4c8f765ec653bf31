"""Domain errors in the admin UI, over real HTTP: a view only calls the service, and what
the service refuses comes back as an HTML page with the error's status, the message in
the user's language and the error's own message as the detail, escaped, no traceback
(admin_ui.errors, the UI's one mapper; HOUSE 6.3 habit 7)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from admin_ui.errors import message_key
from proxy.app import Tenang
from proxy.errors import TenangError
from proxy.lifecycle import InvalidTransition, Status
from proxy.ops.admin_input import ApiError
from proxy.ops.bulk import NotRetryable
from proxy.ops.maintenance import InvalidWindow, UnknownWindow
from proxy.ops.operations import NotFound
from tests.admin_ui.conftest import Browser

UNKNOWN = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def assert_error_page(status: int, page: str, resp: aiohttp.ClientResponse, expected: int,
                      *texts: str) -> None:
    assert status == expected, page
    assert resp.content_type == "text/html"
    assert f"<h1>{expected}</h1>" in page
    for text in texts:
        assert text in page, text
    assert "Traceback" not in page and 'File "' not in page


async def test_retry_of_an_unknown_request_is_a_404_page_in_the_users_language(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    b = await as_role("opa")
    assert_error_page(*await b.post(f"/requests/{UNKNOWN}/retry"), 404,
                      "Data tidak ditemukan.", f"no request with id &#39;{UNKNOWN}&#39;")
    assert (await b.get("/lang/en"))[0] == 303
    assert_error_page(*await b.post(f"/requests/{UNKNOWN}/cancel"), 404, "Not found.")
    assert_error_page(*await b.get(f"/requests/{UNKNOWN}"), 404, "Not found.")


async def test_the_json_api_on_the_same_port_still_answers_json(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    b = await as_role("opa")
    async with b.http.post(f"{ui.admin_url}/api/v1/requests/{UNKNOWN}/retry",
                           headers={"X-CSRF-Token": b.csrf}) as resp:
        assert resp.status == 404
        assert await resp.json() == {"error": f"no request with id {UNKNOWN!r}"}


async def test_a_refused_maintenance_window_shows_why_escaped(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    b = await as_role("adi")
    assert (await b.get("/lang/en"))[0] == 303
    status, page, resp = await b.post("/maintenance", {
        "upstream": "<script>alert(1)</script>", "reason": "BPJS down"})
    assert_error_page(status, page, resp, 400, "could not be saved",
                      "unknown upstream &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;")
    assert "<script>alert" not in page
    assert_error_page(*await b.post("/maintenance/987654/cancel"), 404,
                      "no maintenance window with id 987654")


async def test_a_bulk_retry_of_succeeded_requests_is_a_400_page(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    b = await as_role("opa")
    status, page, resp = await b.post("/bulk", {"status": "succeeded", "expected": "0"})
    assert_error_page(status, page, resp, 400,
                      "Kirim ulang massal hanya untuk status ditolak, gagal total atau ditahan.",
                      "bulk retry applies to failed, dead and held requests")


@pytest.mark.parametrize(("error", "key"), [
    (NotFound("x"), "error.not_found"), (InvalidWindow("over"), "maintenance.invalid"),
    (UnknownWindow("no window 7"), "maintenance.invalid"),
    (NotRetryable(Status.SUCCEEDED.value), "bulk.not_retryable"),
    (ApiError(413, "too big"), None),  # no catalog message: its own is shown
    (InvalidTransition(Status.SUCCEEDED, Status.CANCELLED), None),
])
def test_each_domain_error_has_its_message_key(error: TenangError, key: str | None) -> None:
    assert message_key(error) == key
