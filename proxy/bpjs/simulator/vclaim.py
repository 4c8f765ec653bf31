"""VClaim v2 reads: Peserta, Rujukan, referensi (reference §6.1); SEPs are in vclaim_sep.

Every answer here is encrypted (§3.2). People and referrals are generated from their
numbers (fakes.py), so any well-formed number "exists"; a referral number starting with
``INVALID`` does not.
"""

from __future__ import annotations

from proxy.bpjs.simulator import fakes
from proxy.bpjs.simulator.answers import Answer, refuse
from proxy.bpjs.simulator.routing import Call, Route, route
from proxy.bpjs.simulator.settings import jakarta_date
from proxy.bpjs.simulator.values import parse_date
from proxy.bpjs.simulator.vclaim_sep import ROUTES as SEP_ROUTES
from proxy.bpjs.simulator.vclaim_sep import encrypted, not_found


def peserta_by_card(call: Call) -> Answer:
    no = call.params["noKartu"]
    if not (no.isdigit() and len(no) == 13):
        return refuse(201, "Nomor Kartu harus 13 digit")
    on = parse_date(call.params["tgl"])
    if on is None:
        return refuse(201, "Format Tanggal SEP tidak sesuai (yyyy-MM-dd)")
    return encrypted({"peserta": fakes.peserta(no, None, on)})


def peserta_by_nik(call: Call) -> Answer:
    nik = call.params["nik"]
    if not (nik.isdigit() and len(nik) == 16):
        return refuse(201, "NIK harus 16 digit")
    on = parse_date(call.params["tgl"])
    if on is None:
        return refuse(201, "Format Tanggal SEP tidak sesuai (yyyy-MM-dd)")
    return encrypted({"peserta": fakes.peserta(fakes.card_from_nik(nik), nik, on)})


def _rujukan(call: Call, no: str, from_rs: bool) -> Answer:
    if no.upper().startswith(fakes.INVALID_REFERRAL_PREFIX):
        return refuse(201, "Rujukan tidak valid")
    return encrypted({"rujukan": fakes.rujukan(no, jakarta_date(call.now), from_rs)})


def rujukan_fktp(call: Call) -> Answer:
    return _rujukan(call, call.params["no"], from_rs=False)


def rujukan_rs(call: Call) -> Answer:
    return _rujukan(call, call.params["no"], from_rs=True)


def rujukan_by_card(call: Call) -> Answer:
    no = fakes.referral_for_card(call.params["noKartu"])
    doc = fakes.rujukan(no, jakarta_date(call.now), from_rs=False)
    doc["peserta"] = fakes.peserta(call.params["noKartu"], None, jakarta_date(call.now))
    return encrypted({"rujukan": doc})


def _listed(key: str, items: list[dict[str, str]]) -> Answer:
    return encrypted({key: items}) if items else not_found("Data Tidak Ditemukan")


def ref_poli(call: Call) -> Answer:
    return _listed("poli", fakes.matching(fakes.POLI, call.params["q"]))


def ref_diagnosa(call: Call) -> Answer:
    return _listed("diagnosa", fakes.matching(fakes.DIAGNOSA, call.params["q"]))


def ref_dokter(call: Call) -> Answer:
    return _listed("list", fakes.matching(fakes.DOKTER, call.params["q"]))


def ref_dpjp(call: Call) -> Answer:
    spesialis = call.params["spesialis"].upper()
    return _listed("list", [{"kode": k, "nama": n} for k, n, s in fakes.DOKTER
                            if s == spesialis])


def ref_faskes(call: Call) -> Answer:
    return _listed("faskes", fakes.matching(fakes.FASKES, call.params["q"]))


def ref_propinsi(call: Call) -> Answer:
    return _listed("list", fakes.matching(fakes.PROPINSI, ""))


def ref_kelasrawat(call: Call) -> Answer:
    return _listed("list", [{"kode": str(n), "nama": f"Kelas {n}"} for n in (1, 2, 3)])


ROUTES: tuple[Route, ...] = (
    route("GET", "Peserta/nokartu/{noKartu}/tglSEP/{tgl}", peserta_by_card),
    route("GET", "Peserta/nik/{nik}/tglSEP/{tgl}", peserta_by_nik),
    route("GET", "Rujukan/RS/{no}", rujukan_rs),
    route("GET", "Rujukan/Peserta/{noKartu}", rujukan_by_card),
    route("GET", "Rujukan/{no}", rujukan_fktp),
    route("GET", "referensi/poli/{q}", ref_poli),
    route("GET", "referensi/diagnosa/{q}", ref_diagnosa),
    route("GET", "referensi/dokter/pelayanan/{jns}/tglPelayanan/{tgl}/Spesialis/{spesialis}",
          ref_dpjp),
    route("GET", "referensi/dokter/{q}", ref_dokter),
    route("GET", "referensi/faskes/{q}/{jenis}", ref_faskes),
    route("GET", "referensi/propinsi", ref_propinsi),
    route("GET", "referensi/kelasrawat", ref_kelasrawat),
    *SEP_ROUTES,
)
