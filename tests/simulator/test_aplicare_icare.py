"""Aplicare bed counts (absolute, room must exist) and iCare validate with its 412 throttle."""

from __future__ import annotations

import re

from .conftest import Simrs

ROOM = {"kodekelas": "KL1", "koderuang": "MAWAR", "namaruang": "Ruang Mawar",
        "kapasitas": 10, "tersedia": 4, "tersediapria": 2, "tersediawanita": 2,
        "tersediapriawanita": 0}


async def test_update_of_unknown_room_says_create_first(simrs: Simrs) -> None:
    reply = await simrs.post("aplicare", "rest/bed/update/0301R001", ROOM)
    assert reply.doc == {"metadata": {"code": 0, "message": "Data tidak ada di database."},
                         "response": None}
    assert (await simrs.sim.snapshot())["beds"] == []


async def test_create_update_read_delete(simrs: Simrs) -> None:
    created = await simrs.post("aplicare", "rest/bed/create/0301R001", ROOM)
    assert created.meta == {"code": 1, "message": "Data berhasil ditambahkan."}
    twice = await simrs.post("aplicare", "rest/bed/create/0301R001", ROOM)
    assert twice.code != 1
    updated = await simrs.post("aplicare", "rest/bed/update/0301R001", {**ROOM, "tersedia": 7})
    assert updated.meta == {"code": 1, "message": "Data berhasil diupdate."}
    again = await simrs.post("aplicare", "rest/bed/update/0301R001", {**ROOM, "tersedia": 7})
    assert again.code == 1                                     # absolute, idempotent
    read = await simrs.get("aplicare", "rest/bed/read/0301R001/1/10")
    assert read.meta == {"code": 1, "message": "OK", "totalitems": 1}
    [row] = read.doc["response"]["list"]                       # plain, not encrypted
    assert (row["koderuang"], row["tersedia"], row["namakelas"]) == ("MAWAR", 7, "KELAS I")
    gone = await simrs.post("aplicare", "rest/bed/delete/0301R001",
                            {"kodekelas": "KL1", "koderuang": "MAWAR"})
    assert gone.meta == {"code": 1, "message": "Data berhasil dihapus."}
    assert (await simrs.sim.snapshot())["beds"] == []


async def test_bad_counts_are_refused(simrs: Simrs) -> None:
    reply = await simrs.post("aplicare", "rest/bed/create/0301R001",
                             {**ROOM, "tersedia": 11})
    assert reply.code == 0 and "kapasitas" in reply.message


async def test_autocreate_setting_makes_update_lenient(simrs: Simrs) -> None:
    await simrs.sim.set_mode(aplicare_autocreate=True)
    reply = await simrs.post("aplicare", "rest/bed/update/0301R001", ROOM)
    assert reply.code == 1
    [bed] = (await simrs.sim.snapshot())["beds"]
    assert bed["tersedia"] == 4


async def test_ref_kelas(simrs: Simrs) -> None:
    reply = await simrs.get("aplicare", "rest/ref/kelas")
    assert {"kodekelas": "VIP", "namakelas": "VIP"} in reply.doc["response"]["list"]


async def test_icare_validate_answers_encrypted_url(simrs: Simrs) -> None:
    reply = await simrs.post("icare", "api/rs/validate",
                             {"param": "0001234567890", "kodedokter": 31537})
    assert reply.doc["metaData"]["code"] == 200
    assert reply.plain()["url"].startswith("https://")


async def test_icare_throttle_answers_412_with_wait(simrs: Simrs) -> None:
    sim = simrs.sim
    now = [1_770_000_000.0]
    sim.state.clock = lambda: now[0]
    await sim.set_mode(icare_throttle_s=90)
    body = {"param": "0001234567890", "kodedokter": 31537}
    assert (await simrs.post("icare", "api/rs/validate", body)).code == 200
    now[0] += 30
    throttled = await simrs.post("icare", "api/rs/validate", body)
    assert throttled.code == 412 and throttled.doc["response"] is None
    wait = re.search(r"(\d{2}):(\d{2}):(\d{2})", throttled.message)
    assert wait is not None and wait.groups() == ("00", "01", "00")
    now[0] += 61
    assert (await simrs.post("icare", "api/rs/validate", body)).code == 200
    assert [e["outcome"] for e in await sim.log()] == ["ok", "throttled", "ok"]
