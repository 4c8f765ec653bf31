"""Shared by the tests that run Tenang against the BPJS simulator: a signing SIMRS,
realistic Antrean bookings on today's service day, and a config that re-signs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from proxy.app import Tenang
from proxy.bpjs.service_day import WIB
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import Config
from tests.conftest import admin_headers, make_config, wait_until
from tests.signing import TEST_SECRET_ENV as SECRET_ENV


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
