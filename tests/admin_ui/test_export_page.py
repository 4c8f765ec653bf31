"""The export for auditors in the browser (/export) over real HTTP: an auditor downloads
one zip holding the export and its manifest, which `tenang audit verify` accepts; the
download is audited; a viewer may not; the form checks CSRF and its fields."""

from __future__ import annotations

import dataclasses
import io
import json
import time
import zipfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import StoreConfig
from proxy.lifecycle import Status, Verdict
from proxy.ops.export_manifest import verify_export
from tests.admin_ui.conftest import Browser, bpjs_ui_config, submit
from tests.admin_ui.helpers import settle
from tests.pg_support import schema_now

OK = b'{"metadata":{"code":200,"message":"OK"},"response":{"noSep":"0301R0011125V000777"}}'


def today() -> str:
    return datetime.fromtimestamp(time.time(), WIB).strftime("%d/%m/%Y")


def form(**fields: str) -> dict[str, str]:
    return {"since": today(), "until": today(), "format": "jsonl", "upstream": "",
            "status": "", **fields}


@pytest.fixture
async def pg_ui(tmp_path: Path, bpjs_sim: RunningSimulator,
                start_tenang: Callable[..., Awaitable[Tenang]]) -> Tenang:
    """The ``ui`` fixture's Tenang on a PostgreSQL store (a schema of its own)."""
    config = bpjs_ui_config(tmp_path, bpjs_sim)
    store = StoreConfig(url=schema_now(), pool_min=1, pool_max=4)
    return await start_tenang(dataclasses.replace(config, store=store), relay_enabled=False)


async def test_an_auditor_downloads_the_export_and_its_manifest_in_one_zip(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    await auditor_downloads_one_zip(ui, as_role, tmp_path, http)


async def test_the_same_download_from_a_postgresql_store(
        pg_ui: Tenang, browsers: Callable[[str], Browser], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    async def as_role(name: str) -> Browser:
        b = browsers(pg_ui.admin_url)
        assert await b.login(name) == 303
        return b

    await auditor_downloads_one_zip(pg_ui, as_role, tmp_path, http)


async def auditor_downloads_one_zip(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    first = await submit(http, ui.gateway_url, b'{"kodebooking":"KB-E1","taskid":3}')
    second = await submit(http, ui.gateway_url, b'{"kodebooking":"KB-E2","taskid":3}')
    await settle(ui.backend, first, Status.SUCCEEDED, response=OK, verdict=Verdict.SUCCESS)
    audi = await as_role("audi")
    status, page, _ = await audi.get("/export")
    assert status == 200 and 'id="export-form"' in page and 'name="csrf_token"' in page

    async with audi.http.post(audi.base + "/export", data={**form(), "csrf_token": audi.csrf},
                              allow_redirects=False) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "application/zip"
        day = datetime.fromtimestamp(time.time(), WIB).date().isoformat()
        name = f"tenang-export_{day}_{day}.jsonl"
        assert resp.headers["Content-Disposition"] == f'attachment; filename="{name}.zip"'
        assert resp.headers["Cache-Control"] == "no-store"
        archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    assert archive.namelist() == [name, f"{name}.manifest.json"]
    archive.extractall(tmp_path)
    assert verify_export(tmp_path / name) == []  # what `tenang audit verify` checks
    records = [json.loads(line) for line in (tmp_path / name).read_text("utf-8").splitlines()]
    assert [r["id"] for r in records] == [first, second]
    assert records[0]["status"] == "succeeded"
    assert json.loads(records[0]["last_response"])["response"]["noSep"] == "0301R0011125V000777"
    assert [a["outcome"] for a in records[0]["attempts"]] == ["success"]
    manifest = json.loads((tmp_path / f"{name}.manifest.json").read_text("utf-8"))
    assert manifest["counts"] == {"requests": 2, "attempts": 1}
    assert manifest["first_id"] == first and manifest["last_id"] == second
    entries = await ui.backend.audit.audit_entries(limit=5)
    assert (entries[0].actor, entries[0].action) == ("audi", "export")
    assert entries[0].detail is not None and '"since"' in entries[0].detail


async def test_the_csv_export_with_filters(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    done = await submit(http, ui.gateway_url, b'{"kodebooking":"KB-C1","taskid":1}')
    await submit(http, ui.gateway_url, b'{"kodebooking":"KB-C2","taskid":1}')
    await settle(ui.backend, done, Status.SUCCEEDED, response=OK, verdict=Verdict.SUCCESS)
    adi = await as_role("adi")  # admins may export too
    async with adi.http.post(adi.base + "/export", data={
            **form(format="csv", status="succeeded", upstream="antrean"),
            "csrf_token": adi.csrf}) as resp:
        assert resp.status == 200
        archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    name = archive.namelist()[0]
    assert name.endswith("_antrean_succeeded.csv")
    archive.extractall(tmp_path)
    assert verify_export(tmp_path / name) == []
    rows = (tmp_path / name).read_text("utf-8").splitlines()
    assert len(rows) == 2 and done in rows[1]


async def test_a_viewer_may_not_export(ui: Tenang,
                                       as_role: Callable[[str], Awaitable[Browser]]) -> None:
    vera = await as_role("vera")
    status, page, _ = await vera.get("/export")
    assert status == 403
    status, _, resp = await vera.post("/export", form())
    assert status == 403 and resp.headers["Content-Type"].startswith("text/html")
    status, page, _ = await vera.get("/")
    assert 'href="/export"' not in page
    audi = await as_role("audi")
    status, page, _ = await audi.get("/")
    assert 'href="/export"' in page


async def test_the_form_needs_its_csrf_token_and_good_fields(
        ui: Tenang, as_role: Callable[[str], Awaitable[Browser]]) -> None:
    audi = await as_role("audi")
    status, _, _ = await audi.post("/export", form(), csrf=False)
    assert status == 403
    for fields, error in (({"since": "31/02/2026"}, "export.bad.since"),
                          ({"until": "01/01/2000"}, "export.bad.until"),
                          ({"format": "xml"}, "export.bad.format"),
                          ({"upstream": "nope"}, "export.bad.upstream"),
                          ({"status": "lost"}, "export.bad.status")):
        status, page, resp = await audi.post("/export", form(**fields))
        assert status == 400, fields
        assert f'data-error="{error}"' in page
        assert resp.headers["Content-Type"].startswith("text/html")


async def test_a_login_is_needed(ui: Tenang, browsers: Callable[[str], Browser]) -> None:
    anonymous = browsers(ui.admin_url)
    status, _, resp = await anonymous.get("/export")
    assert status == 303 and resp.headers["Location"].startswith("/login?next=")
