"""Antrean RS (reference §6.2, §6.3): bookings, task times in BPJS's order, cancellation,
and the encrypted reads (task list, registrations, poli, doctors, schedules).

Task rules: a new patient (``pasienbaru`` 1) starts at task 1, a returning patient at 1
or 3; any other task needs its predecessor; 99 is accepted any time after ``add``; a
repeat answers ``208 TaskId=<n> sudah ada``; a ``waktu`` earlier than the previous
task's, or (``check_service_date``) off the booking's service date, is refused. The
numeric code of each refusal is unconfirmed (§4.2); 201 is used throughout.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from proxy.bpjs.simulator import fakes
from proxy.bpjs.simulator.answers import Answer, ok, refuse
from proxy.bpjs.simulator.records import Booking, Task
from proxy.bpjs.simulator.routing import Call, Route, route
from proxy.bpjs.simulator.settings import jakarta_now
from proxy.bpjs.simulator.values import as_int, parse_date, text, wib

ADD_REQUIRED = ("kodebooking", "jenispasien", "nik", "kodepoli", "pasienbaru",
                "tanggalperiksa", "kodedokter", "jampraktek", "jeniskunjungan", "nomorantrean")
TASK_NAMES = {1: "mulai waktu tunggu admisi", 2: "akhir waktu tunggu admisi",
              3: "akhir waktu layan admisi", 4: "akhir waktu tunggu poli",
              5: "akhir waktu layan poli", 6: "akhir waktu tunggu farmasi",
              7: "akhir obat selesai dibuat", 99: "tidak hadir/batal"}
CANCEL_TASK = 99
HARI = ("SENIN", "SELASA", "RABU", "KAMIS", "JUMAT", "SABTU", "MINGGU")


def encrypted(response: Any, code: int = 200, message: str = "OK") -> Answer:
    return ok(response, code=code, message=message, encrypt=True)


def add(call: Call) -> Answer:
    doc = call.json_object()
    for key in ADD_REQUIRED:
        if not text(doc.get(key)):
            return refuse(201, f"{key} tidak boleh kosong")
    if text(doc["jenispasien"]).upper() == "JKN" and not text(doc.get("nomorkartu")):
        return refuse(201, "nomorkartu tidak boleh kosong untuk pasien JKN")
    if parse_date(text(doc["tanggalperiksa"])) is None:
        return refuse(201, "Format Tanggal Tidak Sesuai, format yang benar adalah yyyy-mm-dd")
    kodebooking = text(doc["kodebooking"])
    if kodebooking in call.records.bookings:
        return refuse(208, "Terdapat duplikasi Kode Booking", "duplicate")
    if text(doc.get("nomorreferensi")).upper().startswith(fakes.INVALID_REFERRAL_PREFIX):
        return refuse(201, "Rujukan tidak valid")
    call.records.bookings[kodebooking] = Booking(kodebooking, dict(doc), call.now)
    return ok(None, message="OK")


def _order_error(booking: Booking, taskid: int, waktu: int) -> Answer | None:
    starts = (1,) if booking.new_patient else (1, 3)
    if taskid not in starts and taskid - 1 not in booking.tasks:
        return refuse(201, f"TaskId={taskid} tidak valid / TaskId sebelumnya belum terkirim",
                      "ordering")
    earlier = [t for t in booking.tasks.values() if t.taskid < taskid]
    if earlier:
        previous = max(earlier, key=lambda t: t.taskid)
        if waktu < previous.waktu:
            return refuse(201, f"TaskId={taskid} tidak valid / waktu lebih kecil dari "
                               f"waktu TaskId={previous.taskid}")
    return None


def _date_error(booking: Booking, waktu: int) -> Answer | None:
    service_day = text(booking.fields.get("tanggalperiksa"))
    at = jakarta_now(waktu / 1000)
    if at.date() != date.fromisoformat(service_day):
        return refuse(201, f"Waktu tidak valid ({at:%Y-%m-%d %H:%M:%S} WIB). Tanggal pelayanan "
                           f"untuk Kode Booking tersebut adalah ({service_day})")
    return None


def update_time(call: Call) -> Answer:
    doc = call.json_object()
    kodebooking = text(doc.get("kodebooking"))
    taskid, waktu = as_int(doc.get("taskid")), as_int(doc.get("waktu"))
    if not kodebooking or taskid is None or waktu is None:
        return refuse(201, "kodebooking, taskid dan waktu (epoch ms) wajib diisi")
    if taskid not in TASK_NAMES:
        return refuse(201, f"TaskId={taskid} tidak valid")
    booking = call.records.bookings.get(kodebooking)
    if booking is None:
        # `add` has not landed: retryable once it does, like the task-order errors
        return refuse(201, f"Kode Booking {kodebooking} belum terdaftar", "ordering")
    if taskid in booking.tasks:
        return refuse(208, f"TaskId={taskid} sudah ada", "duplicate")
    if booking.cancelled and taskid != CANCEL_TASK:
        return refuse(201, "Antrean sudah dibatalkan")
    error = _date_error(booking, waktu) if call.config.check_service_date else None
    if error is None and taskid != CANCEL_TASK:
        error = _order_error(booking, taskid, waktu)
    if error is not None:
        return error
    booking.tasks[taskid] = Task(taskid, waktu, call.now)
    return ok(None, message="OK")


def cancel(call: Call) -> Answer:
    booking = call.records.bookings.get(text(call.json_object().get("kodebooking")))
    if booking is None:
        return refuse(201, "Antrean Tidak Ditemukan")
    if booking.cancelled:
        return refuse(201, "Antrean Tidak Ditemukan atau Sudah Dibatalkan", "duplicate")
    booking.cancelled = True
    booking.cancel_reason = text(call.json_object().get("keterangan"))
    return ok(None, message="OK")


def list_tasks(call: Call) -> Answer:
    kodebooking = text(call.json_object().get("kodebooking"))
    booking = call.records.bookings.get(kodebooking)
    if booking is None:
        return refuse(201, "Data tidak ditemukan")
    return encrypted([{"wakturs": wib(t.received_at), "waktu": wib(t.waktu / 1000),
                       "taskname": TASK_NAMES[t.taskid], "taskid": t.taskid,
                       "kodebooking": kodebooking}
                      for t in sorted(booking.tasks.values(), key=lambda t: t.received_at)])


def registration(call: Call) -> Answer:
    booking = call.records.bookings.get(call.params["kodebooking"])
    if booking is None:
        return refuse(201, "Data tidak ditemukan")
    status = "Batal" if booking.cancelled else (
        "Selesai dilayani" if 5 in booking.tasks else "Belum dilayani")
    return encrypted([{**booking.fields, "status": status}])


def ref_poli(call: Call) -> Answer:
    return encrypted([{"nmpoli": n, "nmsubspesialis": n, "kdsubspesialis": k, "kdpoli": k}
                      for k, n in fakes.POLI], code=1)


def ref_dokter(call: Call) -> Answer:
    return encrypted([{"namadokter": n, "kodedokter": int(k)} for k, n, _ in fakes.DOKTER],
                     code=1)


def schedule(call: Call) -> Answer:
    day = parse_date(call.params["tanggal"])
    if day is None:
        return refuse(201, "Format Tanggal Tidak Sesuai, format yang benar adalah yyyy-mm-dd")
    poli = call.params["kodepoli"].upper()
    rows = [{"kodesubspesialis": poli, "hari": day.isoweekday(), "kapasitaspasien": 30,
             "libur": 0, "namahari": HARI[day.weekday()], "jadwal": "08:00-12:00",
             "namasubspesialis": fakes.poli_name(poli), "namadokter": n,
             "kodepoli": poli, "namapoli": fakes.poli_name(poli), "kodedokter": int(k)}
            for k, n, spesialis in fakes.DOKTER if spesialis == poli]
    return encrypted(rows) if rows else refuse(201, "Data tidak ditemukan")


ROUTES: tuple[Route, ...] = (
    route("POST", "antrean/add", add),
    route("POST", "antrean/updatewaktu", update_time),
    route("POST", "antrean/batal", cancel),
    route("POST", "antrean/getlisttask", list_tasks),
    route("GET", "antrean/pendaftaran/kodebooking/{kodebooking}", registration),
    route("GET", "ref/poli", ref_poli),
    route("GET", "ref/dokter", ref_dokter),
    route("GET", "jadwaldokter/kodepoli/{kodepoli}/tanggal/{tanggal}", schedule),
)
