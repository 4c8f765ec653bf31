"""What several benchmarks write alike: the Tenang config's [server]/[store] sections and
an Antrean booking. bench/ stays standalone (it never imports tests/)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from proxy.bpjs.service_day import WIB

SQLITE_URL = "sqlite:///./tenang.db"


def server_store_toml(port: int, admin_port: int, store_url: str = SQLITE_URL,
                      store_settings: str = "") -> str:
    """Both ports on loopback; the store ``store_url``, by default a SQLite file in the
    working directory, with ``store_settings`` (TOML lines, e.g. the pool size)."""
    return f"""\
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"

[store]
url = "{store_url}"
{store_settings}"""


def today() -> str:
    """Today's BPJS service day (WIB), as Antrean bodies spell dates."""
    return datetime.now(WIB).date().isoformat()


def booking_body(kode: str, note: str) -> dict[str, Any]:
    """A full antrean/add booking with patient fields, like a SIMRS sends."""
    return {"kodebooking": kode, "jenispasien": "JKN", "nomorkartu": "0001234567890",
            "nik": "3201012345678901", "nohp": "081234567890", "kodepoli": "INT",
            "namapoli": "PENYAKIT DALAM", "pasienbaru": 0, "norm": "123456",
            "tanggalperiksa": today(), "kodedokter": 31537, "namadokter": "dr. Andi",
            "jampraktek": "08:00-12:00", "jeniskunjungan": 1,
            "nomorreferensi": "0138U0200326P000123", "nomorantrean": "A-12",
            "angkaantrean": 12, "estimasidilayani": int(time.time() * 1000),
            "sisakuotajkn": 5, "kuotajkn": 30, "sisakuotanonjkn": 5, "kuotanonjkn": 30,
            "keterangan": note}
