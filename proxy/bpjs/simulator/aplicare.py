"""Aplicare bed availability (reference §6.4). Nothing is encrypted; success is code 1.

``bed/update`` sets absolute counts for an existing (kodekelas, koderuang); an unknown
room answers ``Data tidak ada di database.`` as observed, so a client must ``bed/create``
first, unless ``aplicare_autocreate`` is on (a lenient BPJS, for demos). The failure code
is not documented; 0 is used, which BPJS client libraries treat as an error (§4.1).
Update and delete also accept PUT and DELETE, which some clients send where the catalog
says POST.
"""

from __future__ import annotations

from typing import Any

from proxy.bpjs.simulator import fakes
from proxy.bpjs.simulator.answers import Answer, ok, refuse
from proxy.bpjs.simulator.records import BED_COUNTS, Room
from proxy.bpjs.simulator.routing import Call, Route, route
from proxy.bpjs.simulator.values import as_int, text, wib

FAILED = 0


def _counts(doc: dict[str, Any]) -> dict[str, int] | str:
    counts: dict[str, int] = {}
    for key in BED_COUNTS:
        value = doc.get(key, 0)
        try:
            counts[key] = int(value)
        except (TypeError, ValueError):
            return f"{key} harus berupa angka"
        if counts[key] < 0:
            return f"{key} tidak boleh negatif"
    if counts["tersedia"] > counts["kapasitas"]:
        return "tersedia tidak boleh lebih dari kapasitas"
    return counts


def _room_key(call: Call) -> tuple[str, str, str] | Answer:
    doc = call.json_object()
    kelas, ruang = text(doc.get("kodekelas")), text(doc.get("koderuang"))
    if not kelas or not ruang:
        return refuse(FAILED, "kodekelas dan koderuang tidak boleh kosong")
    return call.params["kodeppk"], kelas, ruang


def _write(call: Call, create: bool) -> Answer:
    key = _room_key(call)
    if isinstance(key, Answer):
        return key
    doc = call.json_object()
    counts = _counts(doc)
    if isinstance(counts, str):
        return refuse(FAILED, counts)
    room = call.records.rooms.get(key)
    if create and room is not None:
        return refuse(FAILED, "Data ruangan sudah ada.", "duplicate")
    if not create and room is None and not call.settings.aplicare_autocreate:
        return refuse(FAILED, "Data tidak ada di database.")
    if room is None:
        room = Room(*key, namaruang=text(doc.get("namaruang")), counts=counts,
                    updated_at=call.now)
        call.records.rooms[key] = room
        if create:
            return ok(None, code=1, message="Data berhasil ditambahkan.")
    room.counts = counts
    room.namaruang = text(doc.get("namaruang")) or room.namaruang
    room.updated_at = call.now
    room.updates += 1
    return ok(None, code=1, message="Data berhasil diupdate.")


def update(call: Call) -> Answer:
    return _write(call, create=False)


def create(call: Call) -> Answer:
    return _write(call, create=True)


def delete(call: Call) -> Answer:
    key = _room_key(call)
    if isinstance(key, Answer):
        return key
    if call.records.rooms.pop(key, None) is None:
        return refuse(FAILED, "Data tidak ada di database.")
    return ok(None, code=1, message="Data berhasil dihapus.")


def read(call: Call) -> Answer:
    start, limit = as_int(call.params["start"]), as_int(call.params["limit"])
    if start is None or limit is None:
        return refuse(FAILED, "start dan limit harus berupa angka")
    rooms = sorted((r for r in call.records.rooms.values()
                    if r.kodeppk == call.params["kodeppk"]),
                   key=lambda r: (r.kodekelas, r.koderuang))
    # `start` counts rows from 1, as the SIMRS clients send it (…/1/100)
    page = rooms[max(start, 1) - 1:max(start, 1) - 1 + limit]
    kelas = dict(fakes.KELAS)
    rows = [{"rownumber": max(start, 1) + i, "kodeppk": r.kodeppk, "kodekelas": r.kodekelas,
             "namakelas": kelas.get(r.kodekelas, r.kodekelas), "koderuang": r.koderuang,
             "namaruang": r.namaruang, **r.counts, "lastupdate": wib(r.updated_at)}
            for i, r in enumerate(page)]
    return ok({"list": rows}, code=1, totalitems=len(rooms))


def ref_kelas(call: Call) -> Answer:
    rows = [{"kodekelas": k, "namakelas": n} for k, n in fakes.KELAS]
    return ok({"list": rows}, code=1, totalitems=len(rows))


ROUTES: tuple[Route, ...] = tuple(
    route(method, template, handler)
    for template, handler, methods in (
        ("rest/bed/update/{kodeppk}", update, ("POST", "PUT")),
        ("rest/bed/create/{kodeppk}", create, ("POST",)),
        ("rest/bed/delete/{kodeppk}", delete, ("POST", "DELETE")),
        ("rest/bed/read/{kodeppk}/{start}/{limit}", read, ("GET",)),
        ("rest/ref/kelas", ref_kelas, ("GET",)),
    )
    for method in methods
)
