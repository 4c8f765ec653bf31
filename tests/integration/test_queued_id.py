"""A queued answer names its request in the body (issue 10.10): BPJS client libraries hand
the SIMRS only the decoded body, and with that id it fetches BPJS's answer later."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import booking, bpjs_config
from tests.integration.test_modes import SEP_INSERT, Caller, t_sep

ID_AT_END = re.compile(r"id ([0-9A-Z]{26})$")


def message_id(doc: dict[str, Any]) -> str:
    meta = doc.get("metaData") or doc["metadata"]
    found = ID_AT_END.search(meta["message"])
    assert found, f"no request id at the end of {meta['message']!r}"
    return found.group(1)


async def test_sep_insert_queued_in_an_outage_names_its_id_and_the_sep_is_fetched_with_it(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, "vclaim"))
    simrs = Caller(http, bpjs_sim, tenang, "vclaim")
    await bpjs_sim.set_mode("down")
    status, headers, doc, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112224441"))
    assert status == 202 and doc["metaData"]["code"] == "202" and doc["response"] is None
    request_id = message_id(doc)  # all a PHP/Python client gives the SIMRS
    assert request_id == headers["X-Tenang-Request-Id"]
    await bpjs_sim.set_mode("up")
    await simrs.wait_status(request_id, "succeeded")
    async with http.get(f"{tenang.gateway_url}/_tenang/requests/{request_id}") as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["metaData"]["code"] == "200"
    assert answer["response"]["sep"]["noSep"].startswith("0301R001")


async def test_a_resubmission_names_the_original_request(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim), relay_enabled=False)
    simrs = Caller(http, bpjs_sim, tenang, "antrean")
    first = await simrs.call("POST", "/antreanrs/antrean/add", booking("KB-NAMED"))
    again = await simrs.call("POST", "/antreanrs/antrean/add", booking("KB-NAMED"))
    original = message_id(first[2])
    assert message_id(again[2]) == original == again[1]["X-Tenang-Duplicate-Of"]
    assert "Already accepted" in again[2]["metadata"]["message"]
    assert json.dumps(first[2]["response"]) == "null"
