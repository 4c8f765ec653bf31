"""Domain errors carry their HTTP status and the admin API maps them in one place
(admin_api.errors_and_auth): each service refusal reaches the client as that status
with its message in JSON, without a handler translating it (HOUSE habit 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.errors import TenangError
from proxy.lifecycle import InvalidTransition, Status
from proxy.ops.admin_input import ApiError
from proxy.ops.bulk import NotRetryable
from proxy.ops.maintenance import InvalidWindow, MaintenanceError, UnknownWindow
from proxy.ops.operations import NotFound
from tests.conftest import StartTenang, admin_headers, make_config
from tests.integration.test_admin_api import write


@pytest.mark.parametrize(("error", "status"), [
    (NotFound("x"), 404), (InvalidTransition(Status.SUCCEEDED, Status.CANCELLED), 409),
    (UnknownWindow("no window 7"), 404), (InvalidWindow("over"), 400),
    (MaintenanceError("refused"), 400), (NotRetryable("succeeded"), 400),
    (ApiError(413, "too big"), 413),
])
def test_each_domain_error_carries_its_status(error: TenangError, status: int) -> None:
    assert isinstance(error, TenangError)
    assert error.status == status


async def answer(http: aiohttp.ClientSession, method: str, url: str,
                 **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with http.request(method, url, headers=admin_headers(), **kwargs) as resp:
        return resp.status, await resp.json()


async def test_service_refusals_reach_the_api_client_with_their_status(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url), relay_enabled=False)
    api = f"{tenang.admin_url}/api/v1"

    assert await answer(http, "GET", f"{api}/requests/NOPE") == (
        404, {"error": "no request with id 'NOPE'"})

    request_id = await write(http, tenang.gateway_url, "KB-ERRORS-1")
    status, _ = await answer(http, "POST", f"{api}/requests/{request_id}/cancel")
    assert status == 200
    assert await answer(http, "POST", f"{api}/requests/{request_id}/cancel") == (
        409, {"error": "cannot move a cancelled request to cancelled"})

    assert await answer(http, "POST", f"{api}/maintenance/987654/cancel") == (
        404, {"error": "no maintenance window with id 987654"})
    status, doc = await answer(http, "POST", f"{api}/maintenance",
                               json={"upstream": "nope", "reason": "r"})
    assert status == 400 and doc["error"].startswith("unknown upstream 'nope'")
