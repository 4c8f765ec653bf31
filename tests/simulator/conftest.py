"""A tiny SIMRS for the simulator tests: signed requests over real HTTP, replies with the
envelope read out and the encrypted ``response`` decryptable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from proxy.bpjs.simulator.harness import RunningSimulator

PREFIX = {"vclaim": "/vclaim-rest", "antrean": "/antreanrs", "aplicare": "/aplicaresws",
          "icare": "/wsihs"}


@dataclass
class Reply:
    status: int
    doc: Any
    text: str
    sent_headers: dict[str, str]
    sim: RunningSimulator

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.doc.get("metaData") or self.doc["metadata"]
        return meta

    @property
    def code(self) -> Any:
        return self.meta["code"]

    @property
    def message(self) -> str:
        return str(self.meta["message"])

    def plain(self) -> Any:
        """The decrypted ``response``, with the timestamp this request was signed with."""
        return self.sim.decrypt(self.doc, self.sent_headers)


class Simrs:
    def __init__(self, sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.http = http

    async def send(self, method: str, service: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None, prefix: str | None = None,
                   timeout_s: float = 5.0) -> Reply:
        sent = headers if headers is not None else self.sim.signed_headers(service,
                                                                          method=method)
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.sim.url}{prefix if prefix is not None else PREFIX[service]}/{path}"
        async with self.http.request(method, url, data=data, headers=sent,
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            text = await resp.text()
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            return Reply(resp.status, doc, text, sent, self.sim)

    async def get(self, service: str, path: str, **kw: Any) -> Reply:
        return await self.send("GET", service, path, **kw)

    async def post(self, service: str, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.send("POST", service, path, body, **kw)


@pytest.fixture
async def simrs(bpjs_sim: RunningSimulator) -> AsyncIterator[Simrs]:
    # A fresh session per test: a reset connection must not poison the next test's pool.
    async with aiohttp.ClientSession() as http:
        yield Simrs(bpjs_sim, http)


def t_sep(no_kartu: str = "0001234567890", tgl: str = "2026-03-02", poli: str = "INT",
          no_rujukan: str = "0138U0200326P000123", jns: str = "2",
          ppk: str = "0301R001") -> dict[str, Any]:
    """A SEP 2.0 insert body as a SIMRS sends it."""
    return {"request": {"t_sep": {
        "noKartu": no_kartu, "tglSep": tgl, "ppkPelayanan": ppk, "jnsPelayanan": jns,
        "klsRawat": {"klsRawatHak": "2"}, "noMR": "123456",
        "rujukan": {"asalRujukan": "1", "tglRujukan": tgl, "noRujukan": no_rujukan,
                    "ppkRujukan": "0138U020"},
        "catatan": "test", "diagAwal": "I10", "poli": {"tujuan": poli, "eksekutif": "0"},
        "user": "Coba Ws"}}}
