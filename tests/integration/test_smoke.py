from __future__ import annotations

from pathlib import Path

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import applied, booking
from tests.conftest import StartTenang, admin_headers, make_config, wait_until


async def test_accepted_write_is_delivered_and_readable(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url))
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         json=booking("KB1")) as resp:
        assert resp.status == 202
        body = await resp.json()
        request_id = resp.headers["X-Tenang-Request-Id"]
    assert body == {"metadata": {"code": 202, "message": body["metadata"]["message"]},
                    "response": None}

    async def succeeded() -> bool:
        async with http.get(f"{tenang.admin_url}/api/v1/requests/{request_id}",
                            headers=admin_headers()) as r:
            return (await r.json())["status"] == "succeeded"

    await wait_until(succeeded, what="delivery")
    assert [e["path"] for e in bpjs_sim.state.log] == ["/antreanrs/antrean/add"]
    assert applied(bpjs_sim) == {"KB1/add": 1}
