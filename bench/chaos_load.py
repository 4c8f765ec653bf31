"""The chaos soak's SIMRS: concurrent signed writers that keep going through kills.

- **bookings**: Antrean ``antrean/add``, then ``updatewaktu`` tasks 1..7 in order, each
  sent only after the previous one was acknowledged (as a SIMRS at the front desk does);
- **rooms**: Aplicare bed updates, one writer per room, ``tersedia`` counting up as the
  room's version, so the simulator's log names the version it received;
- **SEPs**: VClaim SEP inserts (deadline mode), one new visit (card) each.

A write is retried on a connection error or a 503 until it is acknowledged: Antrean by its
natural key (Tenang answers a resubmission with the original), rooms and SEPs with the
same ``Idempotency-Key``. Pauses between resends are a client's backoff, not
synchronisation. Every acknowledgement is recorded in the ``Ledger``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import booking_body, today
from proxy.bpjs.simulator.client import signed_headers

CONS_ID = "12345"
SECRET = "chaos-soak-secret"
USER_KEY = "chaos-user-key"
PPK = "0301R001"
ADD, TASK = "/antreanrs/antrean/add", "/antreanrs/antrean/updatewaktu"
BED = f"/aplicaresws/rest/bed/update/{PPK}"
SEP = "/vclaim-rest/SEP/2.0/insert"
TASKS = range(1, 8)


@dataclass
class Ack:
    """One acknowledged write: ``key`` names it (``KB/3``, ``room/R1/5``, ``sep/<card>``)."""

    kind: str          # "add" | "task" | "bed" | "sep"
    key: str
    request_id: str
    status: int
    sent_at: float     # first send, time.time()
    acked_at: float
    code: str = ""     # the envelope code of the answer (202 queued, 200 live, ...)


@dataclass
class Ledger:
    acks: list[Ack] = field(default_factory=list)
    resends: Counter[str] = field(default_factory=Counter)  # why a write was sent again
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # key, status, body


def sep_body(card: str) -> dict[str, Any]:
    return {"request": {"t_sep": {
        "noKartu": card, "tglSep": today(), "ppkPelayanan": PPK, "jnsPelayanan": "2",
        "klsRawat": {"klsRawatHak": "2"}, "noMR": card[-6:],
        "rujukan": {"asalRujukan": "1", "tglRujukan": today(),
                    "noRujukan": "0138U0200326P000123", "ppkRujukan": "0138U020"},
        "catatan": "chaos soak", "diagAwal": "I10", "poli": {"tujuan": "INT", "eksekutif": "0"},
        "user": "chaos"}}}


def bed_body(room: str, version: int) -> dict[str, Any]:
    return {"kodekelas": "VIP", "koderuang": room, "namaruang": f"Ruang {room}",
            "kapasitas": 1_000_000, "tersedia": version, "tersediapria": 0,
            "tersediawanita": 0, "tersediapriawanita": 0}


class Simrs:
    """The writers; ``stop()`` lets each finish the write it has started, then return."""

    def __init__(self, gateway: str, ledger: Ledger, tag: str, think_s: float = 0.02) -> None:
        self.gateway = gateway
        self.think_s = think_s  # a person's pause between two writes of one writer
        self.ledger = ledger
        self.tag = tag
        self.stopping = asyncio.Event()
        self._cards = itertools.count(1)
        timeout = aiohttp.ClientTimeout(total=15)
        self.http = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        await self.http.close()

    async def write(self, kind: str, key: str, service: str, path: str, doc: Any,
                    idempotency_key: str | None = None) -> None:
        """Send until acknowledged (2xx); a 4xx is recorded as refused and not resent."""
        data = json.dumps(doc).encode()
        first = time.time()
        while True:
            headers = signed_headers(CONS_ID, SECRET, service, method="POST",
                                     user_key=USER_KEY)
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
            try:
                async with self.http.post(self.gateway + path, data=data,
                                          headers=headers) as resp:
                    body = await resp.read()
                    status = resp.status
                    request_id = resp.headers.get("X-Tenang-Request-Id", "")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.ledger.resends[type(exc).__name__] += 1
                await asyncio.sleep(0.05)  # Tenang is down or restarting: back off
                continue
            if status == 503:
                self.ledger.resends["HTTP 503"] += 1
                await asyncio.sleep(0.05)
                continue
            if 200 <= status < 300:
                self.ledger.acks.append(Ack(kind, key, request_id, status, first,
                                            time.time(), _code(body)))
            else:
                self.ledger.refused.append((key, status, body[:300].decode("utf-8", "replace")))
            return

    async def bookings(self, worker: int) -> None:
        for n in itertools.count():
            if self.stopping.is_set():
                return
            kode = f"CH{self.tag}{worker:02d}{n:05d}"
            await self.write("add", kode, "antrean", ADD, booking_body(kode, "chaos soak"))
            base = int(time.time() * 1000)
            for task in TASKS:
                await self.write("task", f"{kode}/{task}", "antrean", TASK,
                                 {"kodebooking": kode, "taskid": task,
                                  "waktu": base + task * 1000})

    async def room(self, room: str) -> None:
        for version in itertools.count(1):
            if self.stopping.is_set():
                return
            await self.write("bed", f"room/{room}/{version}", "aplicare", BED,
                             bed_body(room, version), f"bed-{self.tag}-{room}-{version}")
            await asyncio.sleep(self.think_s)

    async def seps(self, worker: int) -> None:
        while not self.stopping.is_set():
            card = f"9{self.tag}{worker:02d}{next(self._cards):06d}".ljust(13, "0")[:13]
            await self.write("sep", f"sep/{card}", "vclaim", SEP, sep_body(card),
                             f"sep-{card}")
            await asyncio.sleep(self.think_s)

    async def run(self, bookings: int, rooms: int, seps: int) -> None:
        await asyncio.gather(*(self.bookings(i) for i in range(bookings)),
                             *(self.room(f"R{self.tag}{i:02d}") for i in range(rooms)),
                             *(self.seps(i) for i in range(seps)))


def _code(body: bytes) -> str:
    try:
        doc = json.loads(body)
        meta = doc.get("metaData") or doc.get("metadata") or {}
        return str(meta.get("code", ""))
    except (ValueError, AttributeError):
        return ""
