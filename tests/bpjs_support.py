"""Shared by the tests that run Tenang against the BPJS simulator: a signing SIMRS,
realistic Antrean bookings on today's service day, a config that re-signs, and what the
simulator's log says BPJS applied."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from proxy.bpjs.simulator import LogEntry
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from tests.conftest import admin_headers, make_config, wait_until
from tests.signing import TEST_SECRET_ENV

SECRET_ENV = TEST_SECRET_ENV  # what bpjs_config re-signs with; tests name it from here


def today() -> str:
    return datetime.now(WIB).date().isoformat()


def waktu(minutes_after_7: int) -> int:
    """Epoch ms of a time this morning (WIB): task times of today's service day."""
    day = datetime.now(WIB).replace(hour=7, minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1000) + minutes_after_7 * 60_000


def booking(kode: str, **extra: Any) -> dict[str, Any]:
    return {"kodebooking": kode, "jenispasien": "JKN", "nomorkartu": "0001234567890",
            "nik": "3201012345678901", "nohp": "081234567890", "kodepoli": "INT",
            "namapoli": "PENYAKIT DALAM", "pasienbaru": 0, "norm": "123456",
            "tanggalperiksa": today(), "kodedokter": 31537, "namadokter": "dr. Andi",
            "jampraktek": "08:00-12:00", "jeniskunjungan": 1,
            "nomorreferensi": "0138U0200326P000123", "nomorantrean": "A-12",
            "angkaantrean": 12, "estimasidilayani": waktu(120), "sisakuotajkn": 5,
            "kuotajkn": 30, "sisakuotanonjkn": 5, "kuotanonjkn": 30, "keterangan": "",
            **extra}


# Every call fails with BPJS's HTML 503 page and applies nothing, after the usual
# ``latency_ms`` (``down`` mode fails at once, before any latency).
OUTAGE: dict[str, Any] = {"mode": "flaky", "error_rate": 1.0, "flaky_style": "html"}


def write_key(body: Any) -> str:
    """An Antrean write's identity: ``<kodebooking>/<taskid>``, ``/add`` for a booking."""
    return f"{body['kodebooking']}/{body.get('taskid', 'add')}"


def applied(sim: RunningSimulator) -> Counter[str]:
    """How often BPJS applied each Antrean write (``write_key``), from its log."""
    return Counter(write_key(e["body"]) for e in sim.state.log
                   if e["applied"] and isinstance(e["body"], dict))


def targets(sim: RunningSimulator) -> list[str]:
    """Each request-target BPJS received, as sent on the wire (path and raw query)."""
    return [e["target"] for e in sim.state.log]


def outcomes(sim: RunningSimulator, outcome: str) -> list[LogEntry]:
    """The requests BPJS answered with ``outcome`` (``ok``, ``duplicate``, ``flaky``...)."""
    return sim.state.entries(outcome=outcome)


def overtaking(sim: RunningSimulator, since: float, path: str, marker: str) -> int:
    """How many other requests to ``path`` reached BPJS after ``since`` and before the
    first whose body holds ``marker`` (a live send going ahead of replays: none)."""
    sent = [e for e in sim.state.log if e["time"] >= since and path in e["path"]]
    first = next((i for i, e in enumerate(sent) if marker in str(e["body"])), None)
    assert first is not None, f"{marker} never reached BPJS"
    return first


def assert_applied_once(sim: RunningSimulator, kodebookings: list[str]) -> None:
    """Each booking reached BPJS and was applied exactly once, none refused as a repeat."""
    assert dict(applied(sim)) == {f"{kb}/add": 1 for kb in kodebookings}
    assert outcomes(sim, "duplicate") == []


def sep_insert(no_kartu: str = "0001234567890") -> dict[str, Any]:
    """A VClaim SEP 2.0 insert body for an outpatient visit today."""
    return {"request": {"t_sep": {
        "noKartu": no_kartu, "tglSep": today(), "ppkPelayanan": "0301R001",
        "jnsPelayanan": "2", "klsRawat": {"klsRawatHak": "2"}, "noMR": "123456",
        "rujukan": {"asalRujukan": "1", "tglRujukan": today(),
                    "noRujukan": "0138U0200326P000123", "ppkRujukan": "0138U020"},
        "catatan": "", "diagAwal": "I10", "poli": {"tujuan": "INT", "eksekutif": "0"},
        "user": "Coba Ws"}}}


async def make_sep(sim: RunningSimulator, no_kartu: str = "0001234567890") -> str:
    """Insert a SEP for today straight at the simulator (no Tenang): its number."""
    before = set(sim.state.records.seps)
    async with aiohttp.ClientSession() as http, http.post(
            f"{sim.url}/vclaim-rest/SEP/2.0/insert", data=json.dumps(sep_insert(no_kartu)),
            headers=sim.signed_headers("vclaim", method="POST")) as resp:
        assert resp.status == 200, await resp.text()
    [no_sep] = set(sim.state.records.seps) - before
    return no_sep


def bpjs_config(tmp_path: Path, sim: RunningSimulator, service: str = "antrean", *,
                re_sign: bool = True, **extra: Any) -> Config:
    prefix = {"antrean": "/antreanrs", "vclaim": "/vclaim-rest"}[service]
    upstream: dict[str, Any] = {"name": service, "prefix": prefix, "target": sim.url + prefix,
                                "preset": service, "cons_id": sim.cons_id}
    if re_sign:
        upstream.update(secret_env=SECRET_ENV, env={SECRET_ENV: sim.secret})
    else:
        upstream.update(secret_env=None, unsigned_replays=True)
    upstream.update(extra)
    return make_config(tmp_path, sim.url, **upstream)


def database_bytes(tmp_path: Path) -> bytes:
    """Every byte of the SQLite database, its WAL included."""
    return b"".join(p.read_bytes() for p in tmp_path.glob("tenang.db*"))


class Simrs:
    """A SIMRS that signs its own calls, pointed at Tenang instead of BPJS."""

    def __init__(self, http: aiohttp.ClientSession, sim: RunningSimulator, tenang: Tenang,
                 service: str = "antrean") -> None:
        self.http, self.sim, self.tenang, self.service = http, sim, tenang, service
        self.last_headers: dict[str, str] = {}

    async def send(self, method: str, path: str, body: Any = None, *,
                   signed_at: float | None = None) -> str:
        self.last_headers = self.sim.signed_headers(self.service, method=method,
                                                    now=signed_at)
        data = None if body is None else json.dumps(body).encode()
        async with self.http.request(method, self.tenang.gateway_url + path, data=data,
                                     headers=self.last_headers) as resp:
            assert resp.status == 202, await resp.text()
            return resp.headers["X-Tenang-Request-Id"]

    async def request(self, request_id: str) -> Any:
        async with self.http.get(f"{self.tenang.admin_url}/api/v1/requests/{request_id}",
                                 headers=admin_headers()) as resp:
            assert resp.status == 200
            return await resp.json()

    async def wait_status(self, request_id: str, *statuses: str) -> Any:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen["doc"] = await self.request(request_id)
            return bool(seen["doc"]["status"] in statuses)

        await wait_until(reached, what=f"{request_id} to become {'/'.join(statuses)}")
        return seen["doc"]
