"""Methods (issue 10.8): each preset endpoint takes only the methods it declares, other
paths take the upstream's method list, and any other method gets 405 with an Allow
header in the service's envelope; nothing refused is stored or sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator
from tests.bpjs_support import targets
from tests.conftest import StartTenang, make_config
from tests.integration.test_intake import db_rows

EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
                "PURGE", "REPORT", "LINK"]
BODY = b'{"kodebooking":"KB-METHOD","taskid":1,"kodekelas":"VIP","koderuang":"R1"}'


async def call(http: aiohttp.ClientSession, method: str, url: str) -> tuple[int, Any, str]:
    async with http.request(method, url, data=BODY) as resp:
        text = await resp.text()
        try:
            doc = json.loads(text) if text else None  # HEAD answers carry no body
        except ValueError:
            doc = None  # BPJS's own HTML page, passed through
        return resp.status, doc, resp.headers.get("Allow", "")


def assert_refused(answer: tuple[int, Any, str], allow: str, key: str = "metadata") -> None:
    status, doc, allowed = answer
    assert status == 405 and allowed == allow
    if doc is not None:  # HEAD answers carry no body
        assert doc[key]["code"] in (405, "405") and doc["response"] is None
        assert f"allowed: {allow}" in doc[key]["message"]


@pytest.mark.parametrize("method", EVERY_METHOD)
async def test_antrean_add_takes_only_post(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, method: str) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url),
                                relay_enabled=False)
    answer = await call(http, method, tenang.gateway_url + "/antreanrs/antrean/add")
    if method == "POST":
        assert answer[0] == 202
        return
    assert_refused(answer, "POST")
    assert db_rows(tmp_path) == [] and targets(bpjs_sim) == []


@pytest.mark.parametrize("method", EVERY_METHOD)
async def test_an_unnamed_bpjs_path_takes_the_four_bpjs_methods(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, method: str) -> None:
    tenang = await start_tenang(make_config(tmp_path, bpjs_sim.url),
                                relay_enabled=False)
    answer = await call(http, method, tenang.gateway_url + "/antreanrs/antrean/lainnya")
    if method in ("POST", "PUT", "DELETE"):
        assert answer[0] == 202  # unknown writes are queued, as before
    elif method == "GET":  # a read, passed through: BPJS's own 404 for a path it lacks
        assert answer[0] == 404 and answer[1] is None
        assert db_rows(tmp_path) == [] and targets(bpjs_sim) == ["/antreanrs/antrean/lainnya"]
    else:
        assert_refused(answer, "DELETE, GET, POST, PUT")
        assert db_rows(tmp_path) == [] and targets(bpjs_sim) == []


@pytest.mark.parametrize(("method", "status"), [
    ("POST", 202), ("PUT", 202), ("DELETE", 405), ("PATCH", 405), ("TRACE", 405)])
async def test_aplicare_bed_update_takes_post_and_put(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, method: str, status: int) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, name="aplicare", prefix="/aplicaresws",
                      target=bpjs_sim.url + "/aplicaresws", preset="aplicare")
    tenang = await start_tenang(cfg, relay_enabled=False)
    answer = await call(http, method, tenang.gateway_url
                        + "/aplicaresws/rest/bed/update/0301R001")
    assert answer[0] == status
    if status == 405:
        assert_refused(answer, "POST, PUT")


async def test_vclaim_refusal_uses_the_vclaim_envelope(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, name="vclaim", prefix="/vclaim-rest",
                      target=bpjs_sim.url + "/vclaim-rest", preset="vclaim")
    tenang = await start_tenang(cfg, relay_enabled=False)
    answer = await call(http, "GET", tenang.gateway_url + "/vclaim-rest/LPK/insert")
    assert_refused(answer, "DELETE, POST, PUT", key="metaData")
    # LPK reads are reads (they were queued as writes when LPK/** took any method).
    # Passed through: the simulator serves no LPK, so its own 404 page comes back.
    lpk = "/vclaim-rest/LPK/TglMasuk/2025-01-01/JnsPelayanan/1"
    status, doc, _ = await call(http, "GET", tenang.gateway_url + lpk)
    assert (status, doc) == (404, None) and db_rows(tmp_path) == []
    assert targets(bpjs_sim) == [lpk]


@pytest.mark.parametrize(("methods", "method", "status"), [
    (None, "PATCH", 202), (None, "HEAD", 202), (None, "TRACE", 405),
    (None, "PROPFIND", 405), (["post"], "POST", 202), (["POST"], "PUT", 405),
])
async def test_a_generic_upstream_takes_its_configured_methods(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession, methods: list[str] | None, method: str, status: int) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url, preset="generic", methods=methods)
    tenang = await start_tenang(cfg, relay_enabled=False)
    answer = await call(http, method, tenang.gateway_url + "/antreanrs/orders")
    assert answer[0] == status
    if status == 405:
        assert answer[2] == ", ".join(methods or ["DELETE", "GET", "HEAD", "PATCH", "POST",
                                                  "PUT"])


async def test_a_config_route_naming_a_method_allows_it(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: StartTenang,
        http: aiohttp.ClientSession) -> None:
    cfg = make_config(tmp_path, bpjs_sim.url,
                      routes=[{"match": "PUT antrean/add", "mode": "queue"}])
    tenang = await start_tenang(cfg, relay_enabled=False)
    assert (await call(http, "PUT", tenang.gateway_url + "/antreanrs/antrean/add"))[0] == 202
    assert_refused(await call(http, "PATCH", tenang.gateway_url + "/antreanrs/antrean/add"),
                   "POST, PUT")
