"""The JSON answers carry exactly the keys their TypedDicts (proxy/shapes.py) name:
mypy checks where they are built, this checks what goes out over HTTP (a ``**`` spread or
a key added after the fact would slip past the type checker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.shapes import (
    AttemptJson,
    BreakerJson,
    RequestBrief,
    RequestDetail,
    Summary,
    TenangState,
    UpstreamSummary,
)
from tests.conftest import StartTenang, make_config
from tests.integration.test_admin_api import api, wait_status, write


def keys(shape: Any) -> set[str]:
    return set(shape.__required_keys__) | set(shape.__optional_keys__)


async def test_every_admin_answer_has_the_keys_of_its_typed_dict(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    request_id = await write(http, tenang.gateway_url, "KB-SHAPES-1")
    await wait_status(http, tenang.admin_url, request_id, "succeeded")

    listed = await api(http, "GET", f"{tenang.admin_url}/api/v1/requests")
    assert [set(item) for item in listed["items"]] == [keys(RequestBrief)]
    detail = await api(http, "GET", f"{tenang.admin_url}/api/v1/requests/{request_id}")
    assert set(detail) == keys(RequestDetail)
    assert [set(a) for a in detail["attempts"]] == [keys(AttemptJson)]

    summary = await api(http, "GET", f"{tenang.admin_url}/api/v1/summary")
    assert set(summary) == keys(Summary)
    assert set(summary["upstreams"]["antrean"]) == keys(UpstreamSummary)
    assert set(summary["upstreams"]["antrean"]["breaker"]) == keys(BreakerJson)

    async with http.get(f"{tenang.gateway_url}/_tenang/requests/{request_id}") as resp:
        assert resp.status == 200, await resp.text()
        looked_up = await resp.json()
    assert set(looked_up["tenang"]) == keys(TenangState)
