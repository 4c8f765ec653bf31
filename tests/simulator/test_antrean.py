"""Antrean: add and its 208 duplicate, task-id order (new 1->7, returning from 3), 208 on
a repeated task, 99 any time, waktu rules, batal, and the encrypted reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from proxy.bpjs.simulator.settings import JAKARTA

from .conftest import Simrs

DAY = "2026-03-02"


def at(hour: int, minute: int = 0, day: int = 2) -> int:
    """Epoch ms of a WIB wall-clock time on the service day."""
    return int(datetime(2026, 3, day, hour, minute, tzinfo=JAKARTA).timestamp() * 1000)


def booking(kode: str = "KB0001", new_patient: bool = False, **extra: Any) -> dict[str, Any]:
    return {"kodebooking": kode, "jenispasien": "JKN", "nomorkartu": "0001234567890",
            "nik": "3201012345678901", "nohp": "081234567890", "kodepoli": "INT",
            "namapoli": "PENYAKIT DALAM", "pasienbaru": 1 if new_patient else 0,
            "norm": "123456", "tanggalperiksa": DAY, "kodedokter": 31537,
            "namadokter": "dr. Andi", "jampraktek": "08:00-12:00", "jeniskunjungan": 1,
            "nomorreferensi": "0138U0200326P000123", "nomorantrean": "A-12",
            "angkaantrean": 12, "estimasidilayani": at(9), "sisakuotajkn": 5, "kuotajkn": 30,
            "sisakuotanonjkn": 5, "kuotanonjkn": 30, "keterangan": "datang 30 menit awal",
            **extra}


async def task(simrs: Simrs, taskid: int, waktu: int, kode: str = "KB0001") -> Any:
    return await simrs.post("antrean", "antrean/updatewaktu",
                            {"kodebooking": kode, "taskid": taskid, "waktu": waktu})


async def test_add_then_duplicate_kodebooking_is_208(simrs: Simrs) -> None:
    first = await simrs.post("antrean", "antrean/add", booking())
    assert first.doc == {"metadata": {"code": 200, "message": "OK"}, "response": None}
    again = await simrs.post("antrean", "antrean/add", booking())
    assert again.meta == {"code": 208, "message": "Terdapat duplikasi Kode Booking"}
    assert [e["outcome"] for e in await simrs.sim.log()] == ["ok", "duplicate"]


async def test_add_with_missing_field_or_invalid_referral_is_201(simrs: Simrs) -> None:
    body = booking()
    del body["kodepoli"]
    missing = await simrs.post("antrean", "antrean/add", body)
    assert missing.code == 201 and "kodepoli" in missing.message
    invalid = await simrs.post("antrean", "antrean/add",
                               booking(nomorreferensi="INVALID0001"))
    assert invalid.meta == {"code": 201, "message": "Rujukan tidak valid"}
    assert (await simrs.sim.snapshot())["bookings"] == []


async def test_new_patient_must_send_tasks_from_1_in_order(simrs: Simrs) -> None:
    await simrs.post("antrean", "antrean/add", booking(new_patient=True))
    early = await task(simrs, 3, at(8, 10))
    assert early.meta == {"code": 201,
                          "message": "TaskId=3 tidak valid / TaskId sebelumnya belum terkirim"}
    for n, minute in ((1, 0), (2, 5), (3, 10), (4, 20), (5, 40)):
        assert (await task(simrs, n, at(8, minute))).code == 200, n
    skip = await task(simrs, 7, at(9))
    assert skip.code == 201
    [state] = (await simrs.sim.snapshot())["bookings"]
    assert state["task_ids"] == [1, 2, 3, 4, 5]
    outcomes = [e["outcome"] for e in await simrs.sim.log(path_contains="updatewaktu")]
    assert outcomes == ["ordering", "ok", "ok", "ok", "ok", "ok", "ordering"]


async def test_returning_patient_starts_at_3_and_repeat_is_208(simrs: Simrs) -> None:
    await simrs.post("antrean", "antrean/add", booking())
    assert (await task(simrs, 4, at(8, 20))).code == 201
    assert (await task(simrs, 3, at(8, 10))).code == 200
    assert (await task(simrs, 4, at(8, 20))).code == 200
    repeat = await task(simrs, 4, at(8, 25))
    assert repeat.meta == {"code": 208, "message": "TaskId=4 sudah ada"}
    listed = await simrs.post("antrean", "antrean/getlisttask", {"kodebooking": "KB0001"})
    tasks = listed.plain()
    assert [t["taskid"] for t in tasks] == [3, 4]
    assert tasks[0]["waktu"] == "02-03-2026 08:10:00 WIB"     # the first value is kept
    assert tasks[1]["waktu"] == "02-03-2026 08:20:00 WIB"


async def test_task_99_any_time_after_add(simrs: Simrs) -> None:
    assert (await task(simrs, 99, at(8))).code == 201          # no booking yet
    await simrs.post("antrean", "antrean/add", booking())
    assert (await task(simrs, 99, at(8))).code == 200
    assert (await task(simrs, 99, at(8, 1))).code == 208


async def test_waktu_earlier_than_previous_task_or_off_day_is_refused(simrs: Simrs) -> None:
    await simrs.post("antrean", "antrean/add", booking())
    assert (await task(simrs, 3, at(9))).code == 200
    earlier = await task(simrs, 4, at(8, 30))
    assert earlier.code == 201 and "waktu" in earlier.message
    next_day = await task(simrs, 4, at(9, 30, day=3))
    assert next_day.code == 201
    assert next_day.message == ("Waktu tidak valid (2026-03-03 09:30:00 WIB). Tanggal pelayanan"
                                " untuk Kode Booking tersebut adalah (2026-03-02)")
    assert (await task(simrs, 4, at(9, 30))).code == 200


async def test_batal_and_registration_read(simrs: Simrs) -> None:
    await simrs.post("antrean", "antrean/add", booking())
    reg = await simrs.get("antrean", "antrean/pendaftaran/kodebooking/KB0001")
    assert reg.plain()[0]["status"] == "Belum dilayani"
    cancel = {"kodebooking": "KB0001", "keterangan": "pasien tidak datang"}
    assert (await simrs.post("antrean", "antrean/batal", cancel)).code == 200
    assert (await simrs.post("antrean", "antrean/batal", cancel)).code == 201
    assert (await task(simrs, 3, at(8))).code == 201
    [state] = (await simrs.sim.snapshot())["bookings"]
    assert state["cancelled"] is True


async def test_reference_reads_are_encrypted(simrs: Simrs) -> None:
    poli = await simrs.get("antrean", "ref/poli")
    assert poli.code == 1 and isinstance(poli.doc["response"], str)
    assert {"nmpoli": "ANAK", "nmsubspesialis": "ANAK", "kdsubspesialis": "ANA",
            "kdpoli": "ANA"} in poli.plain()
    dokter = await simrs.get("antrean", "ref/dokter")
    assert {"namadokter": "dr. Andi Wijaya, Sp.PD", "kodedokter": 31537} in dokter.plain()
    jadwal = await simrs.get("antrean", "jadwaldokter/kodepoli/INT/tanggal/2026-03-02")
    [row] = jadwal.plain()
    assert row["namahari"] == "SENIN" and row["kodedokter"] == 31537
