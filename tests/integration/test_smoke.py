from __future__ import annotations

from pathlib import Path

from tests.conftest import admin_headers, make_config, wait_until


async def test_accepted_write_is_delivered_and_readable(tmp_path: Path, standin, start_tenang,
                                                        http) -> None:
    tenang = await start_tenang(make_config(tmp_path, standin.url))
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                         json={"kodebooking": "KB1"}) as resp:
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
    assert [e["path"] for e in standin.state.log] == ["/antreanrs/antrean/add"]
