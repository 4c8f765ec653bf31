"""VClaim SEP endpoints: insert, read-back, update, delete, discharge date, and the
reconciliation reads a proxy uses after an ambiguous insert (reference §6.1, §5.3).

SEP 2.0 update/delete and ``sep/cbg`` answer plain; everything else is encrypted. A
second same-day same-poli outpatient insert is refused with ``"201"`` naming the existing
SEP, the message observed from BPJS; so is a new inpatient SEP while one is still open.
A referral number starting with ``INVALID`` is the simulator's invalid referral.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from proxy.bpjs.simulator import fakes
from proxy.bpjs.simulator.answers import Answer, ok, refuse
from proxy.bpjs.simulator.records import Sep
from proxy.bpjs.simulator.routing import Call, Route, route
from proxy.bpjs.simulator.values import dig, parse_date, text

JNS_NAMES = {"1": "R.Inap", "2": "R.Jalan"}


def encrypted(response: Any, message: str = "OK") -> Answer:
    return ok(response, message=message, encrypt=True)


def not_found(message: str = "Data tidak ditemukan.") -> Answer:
    return refuse(201, message)


def _t_sep(call: Call) -> dict[str, Any] | None:
    t = dig(call.body, "request", "t_sep")
    return t if isinstance(t, dict) else None


def sep_view(sep: Sep) -> dict[str, Any]:
    """A SEP as VClaim shows it (``SEP/{noSep}``, and inside the insert answer)."""
    return {"noSep": sep.no_sep, "tglSep": sep.tgl_sep,
            "jnsPelayanan": JNS_NAMES.get(sep.jns_pelayanan, sep.jns_pelayanan),
            "kelasRawat": f"Kelas {sep.kls_rawat}", "diagnosa": fakes.diagnosa_name(sep.diagnosa),
            "noRujukan": sep.no_rujukan, "poli": fakes.poli_name(sep.poli) if sep.poli else "",
            "poliEksekutif": "0", "catatan": sep.catatan, "penjamin": "-",
            "tglPlgSep": sep.tgl_pulang, "ppkPelayanan": sep.ppk_pelayanan,
            "peserta": fakes.sep_peserta(sep.no_kartu, sep.no_mr),
            "informasi": {"dinsos": None, "prolanisPRB": None, "noSKTM": None, "eSEP": None}}


def histori_item(sep: Sep) -> dict[str, Any]:
    return {"noSep": sep.no_sep, "tglSep": sep.tgl_sep, "tglPlgSep": sep.tgl_pulang,
            "noKartu": sep.no_kartu, "namaPeserta": fakes.person(sep.no_kartu)["nama"],
            "jnsPelayanan": sep.jns_pelayanan, "kelasRawat": sep.kls_rawat,
            "diagnosa": fakes.diagnosa_name(sep.diagnosa), "poli": fakes.poli_name(sep.poli),
            "noRujukan": sep.no_rujukan, "ppkPelayanan": sep.ppk_pelayanan}


def _duplicate(call: Call, t: dict[str, Any], poli: str) -> Answer | None:
    rs, noka = call.config.hospital_name, text(t["noKartu"])
    jns = text(t["jnsPelayanan"])
    if jns == "2":
        same = call.records.same_day_outpatient(noka, text(t["tglSep"]), poli)
        if same is not None:
            return refuse(201, f"1.Peserta NoKa {noka} telah mendapat Pelayanan R.Jalan di "
                               f"Poli {same.poli} pada hari yg sama di {rs} "
                               f"Dgn No.SEP {same.no_sep}", "duplicate")
    else:
        open_ = call.records.open_inpatient(noka)
        if open_ is not None:
            since = date.fromisoformat(open_.tgl_sep).strftime("%d/%m/%Y")
            return refuse(201, f"3.1.Peserta NoKa {noka} telah mendapat Pelayanan R.Inap "
                               f"pada tgl. {since} dan belum dipulangkan di {rs} "
                               f"Dgn No.SEP {open_.no_sep}", "duplicate")
    return None


def _validate_insert(t: dict[str, Any] | None) -> Answer | None:
    if t is None:
        return refuse(201, "Request tidak valid: t_sep tidak ditemukan")
    for key in ("noKartu", "tglSep", "ppkPelayanan", "jnsPelayanan"):
        if not text(t.get(key)):
            return refuse(201, f"{key} tidak boleh kosong")
    if parse_date(text(t["tglSep"])) is None:
        return refuse(201, "Format tglSep tidak sesuai (yyyy-MM-dd)")
    if text(t["jnsPelayanan"]) not in JNS_NAMES:
        return refuse(201, "jnsPelayanan tidak sesuai (1 R.Inap, 2 R.Jalan)")
    if text(t["jnsPelayanan"]) == "2" and not text(dig(t, "poli", "tujuan")):
        return refuse(201, "Poli tujuan tidak boleh kosong")
    if text(dig(t, "rujukan", "noRujukan")).upper().startswith(fakes.INVALID_REFERRAL_PREFIX):
        return refuse(201, "Rujukan tidak valid")
    return None


def insert(call: Call) -> Answer:
    t = _t_sep(call)
    invalid = _validate_insert(t)
    if invalid is not None or t is None:
        return invalid or refuse(201, "Request tidak valid")
    poli = text(dig(t, "poli", "tujuan")).upper()
    duplicate = _duplicate(call, t, poli)
    if duplicate is not None:
        return duplicate
    tgl = date.fromisoformat(text(t["tglSep"]))
    ppk = text(t["ppkPelayanan"])
    sep = Sep(no_sep=call.records.next_sep_number(ppk, tgl.month, tgl.year),
              no_kartu=text(t["noKartu"]), tgl_sep=tgl.isoformat(), ppk_pelayanan=ppk,
              jns_pelayanan=text(t["jnsPelayanan"]), poli=poli,
              no_rujukan=text(dig(t, "rujukan", "noRujukan")),
              diagnosa=text(t.get("diagAwal")),
              kls_rawat=text(dig(t, "klsRawat", "klsRawatHak")) or "3",
              no_mr=text(t.get("noMR")), catatan=text(t.get("catatan")),
              created_at=call.now, request=t)
    call.records.seps[sep.no_sep] = sep
    return encrypted({"sep": sep_view(sep)}, "Sukses")


def _live(call: Call, no_sep: str) -> Sep | Answer:
    sep = call.records.seps.get(no_sep)
    if sep is None:
        return not_found(f"No.SEP {no_sep} tidak ditemukan")
    if sep.deleted:
        return refuse(201, f"No.SEP {no_sep} sudah dihapus", "duplicate")
    return sep


def read(call: Call) -> Answer:
    found = _live(call, call.params["noSep"])
    if isinstance(found, Answer):
        return not_found(f"No.SEP {call.params['noSep']} tidak ditemukan")
    return encrypted(sep_view(found))


def update(call: Call) -> Answer:
    t = _t_sep(call) or {}
    found = _live(call, text(t.get("noSep")))
    if isinstance(found, Answer):
        return found if found.outcome != "duplicate" else not_found(found.message)
    found.catatan = text(t.get("catatan")) or found.catatan
    found.diagnosa = text(t.get("diagAwal")) or found.diagnosa
    found.kls_rawat = text(dig(t, "klsRawat", "klsRawatHak")) or found.kls_rawat
    found.no_mr = text(t.get("noMR")) or found.no_mr
    found.updates += 1
    return ok(found.no_sep, message="Sukses")     # plain: SEP 2.0 update is not encrypted


def delete(call: Call) -> Answer:
    t = _t_sep(call) or {}
    found = _live(call, text(t.get("noSep")))
    if isinstance(found, Answer):
        return found
    found.deleted = True
    return ok(found.no_sep, message="Sukses")     # plain, like the real delete


def discharge(call: Call) -> Answer:
    t = _t_sep(call) or {}
    found = _live(call, text(t.get("noSep")))
    if isinstance(found, Answer):
        return found if found.outcome != "duplicate" else not_found(found.message)
    if parse_date(text(t.get("tglPulang"))) is None:
        return refuse(201, "Format tglPulang tidak sesuai (yyyy-MM-dd)")
    found.tgl_pulang = text(t.get("tglPulang"))
    return ok(None, message="Sukses")


def cbg(call: Call) -> Answer:
    found = _live(call, call.params["noSep"])
    if isinstance(found, Answer):
        return not_found(f"No.SEP {call.params['noSep']} tidak ditemukan")
    # Plain, like BPJS; the grouping itself is invented (INA-CBG is out of scope).
    return ok({"noSep": found.no_sep, "kodeINACBG": "Q-5-44-0", "tarifINACBG": "215000"})


def last_sep(call: Call) -> Answer:
    sep = call.records.last_sep_for_referral(call.params["noRujukan"])
    return encrypted(histori_item(sep)) if sep else not_found()


def history(call: Call) -> Answer:
    seps = call.records.seps_for_card(call.params["noKartu"], call.params["start"],
                                      call.params["end"])
    return encrypted({"histori": [histori_item(s) for s in seps]}) if seps else not_found()


def visits(call: Call) -> Answer:
    seps = call.records.seps_on(call.params["tgl"], call.params["jns"])
    return encrypted({"sep": [histori_item(s) for s in seps]}) if seps else not_found()


ROUTES: tuple[Route, ...] = (
    route("POST", "SEP/2.0/insert", insert),
    route("PUT", "SEP/2.0/update", update),
    route("DELETE", "SEP/2.0/delete", delete),
    route("PUT", "SEP/2.0/updtglplg", discharge),
    route("GET", "SEP/{noSep}", read),
    route("GET", "sep/cbg/{noSep}", cbg),
    route("GET", "Rujukan/lastsep/norujukan/{noRujukan}", last_sep),
    route("GET", "monitoring/HistoriPelayanan/NoKartu/{noKartu}/tglMulai/{start}"
                 "/tglAkhir/{end}", history),
    route("GET", "Monitoring/Kunjungan/Tanggal/{tgl}/JnsPelayanan/{jns}", visits),
)
