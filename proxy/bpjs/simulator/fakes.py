"""Deterministic fake reference data: people from card/NIK numbers, referrals, and a few
realistic reference lists (poli, diagnoses, doctors, classes).

Derived from a hash of the number, so the same card always yields the same person across
runs and processes, and no real personal data is involved.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

FIRST = ("Budi", "Siti", "Agus", "Dewi", "Joko", "Rina", "Ahmad", "Sri", "Eko", "Wahyuni",
         "Hendra", "Ayu", "Bambang", "Lestari", "Rudi", "Fitri")
LAST = ("Santoso", "Rahmawati", "Saputra", "Wijaya", "Hidayat", "Kusuma", "Pratama",
        "Susanti", "Nugroho", "Halim", "Siregar", "Harahap")
PESERTA_TYPES = (("13", "PEGAWAI SWASTA"), ("14", "PBI (APBN)"), ("5", "PNS DAERAH"),
                 ("21", "PEKERJA MANDIRI"))

POLI = (("INT", "PENYAKIT DALAM"), ("ANA", "ANAK"), ("BED", "BEDAH"), ("OBG", "OBGYN"),
        ("MAT", "MATA"), ("SAR", "SARAF"), ("JAN", "JANTUNG DAN PEMBULUH DARAH"),
        ("THT", "THT-KL"), ("KLT", "KULIT KELAMIN"), ("GIG", "GIGI"),
        ("IGD", "INSTALASI GAWAT DARURAT"))
DIAGNOSA = (("A09", "Diarrhoea and gastroenteritis of presumed infectious origin"),
            ("A01.0", "Typhoid fever"),
            ("E11.9", "Non-insulin-dependent diabetes mellitus without complications"),
            ("I10", "Essential (primary) hypertension"),
            ("J06.9", "Acute upper respiratory infection, unspecified"),
            ("K29.7", "Gastritis, unspecified"), ("H52.1", "Myopia"),
            ("Z09.8", "Follow-up examination after other treatment for other conditions"))
DOKTER = (("31537", "dr. Andi Wijaya, Sp.PD", "INT"), ("31538", "dr. Maria Ulfa, Sp.A", "ANA"),
          ("31539", "dr. Robert Tan, Sp.B", "BED"), ("31540", "dr. Ratna Dewi, Sp.OG", "OBG"),
          ("31541", "dr. Yusuf Hakim, Sp.M", "MAT"), ("31542", "dr. Lina Marlina, Sp.S", "SAR"))
KELAS = (("VVP", "VVIP"), ("VIP", "VIP"), ("UTM", "UTAMA"), ("KL1", "KELAS I"),
         ("KL2", "KELAS II"), ("KL3", "KELAS III"), ("ICU", "ICU"), ("ICC", "ICCU"),
         ("NIC", "NICU"), ("PIC", "PICU"), ("IGD", "IGD"), ("UGD", "UGD"), ("RBY", "RUANG BAYI"))
PROPINSI = (("01", "ACEH"), ("11", "JAWA BARAT"), ("12", "JAWA TENGAH"), ("13", "JAWA TIMUR"),
            ("31", "DKI JAKARTA"))
FASKES = (("0138U020", "KPO PUSKESMAS KEBON JERUK"), ("0301R001", "RS SIMULASI TENANG"),
          ("0114R009", "RSUD CONTOH PROVINSI"))


# The simulator's invalid referral: any number starting with this is refused.
INVALID_REFERRAL_PREFIX = "INVALID"


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def card_from_nik(nik: str) -> str:
    return f"000{_h('card' + nik) % 10**10:010d}"


def nik_from_card(no_kartu: str) -> str:
    return f"3201{_h('nik' + no_kartu) % 10**12:012d}"


def person(no_kartu: str, nik: str | None = None) -> dict[str, Any]:
    """The fields of a VClaim ``peserta`` that depend on the person."""
    h = _h(no_kartu)
    sex = "L" if h % 2 else "P"
    born = date(1950, 1, 1) + timedelta(days=h % 25000)
    kode, jenis = PESERTA_TYPES[h % len(PESERTA_TYPES)]
    kelas = str(1 + h % 3)
    return {"noKartu": no_kartu, "nik": nik or nik_from_card(no_kartu),
            "nama": f"{FIRST[h % len(FIRST)]} {LAST[(h >> 8) % len(LAST)]}".upper(),
            "sex": sex, "tglLahir": born.isoformat(), "pisa": "1",
            "hakKelas": {"kode": kelas, "keterangan": f"KELAS {'I' * int(kelas)}"},
            "jenisPeserta": {"kode": kode, "keterangan": jenis},
            "mr": {"noMR": f"{h % 10**6:06d}", "noTelepon": f"0812{h % 10**8:08d}"},
            "statusPeserta": {"kode": "0", "keterangan": "AKTIF"}}


def peserta(no_kartu: str, nik: str | None, on: date) -> dict[str, Any]:
    p = person(no_kartu, nik)
    born = date.fromisoformat(p["tglLahir"])
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return {**p,
            "cob": {"nmAsuransi": None, "noAsuransi": None, "tglTAT": None, "tglTMT": None},
            "informasi": {"dinsos": None, "noSKTM": None, "prolanisPRB": None, "eSEP": None},
            "provUmum": {"kdProvider": FASKES[0][0], "nmProvider": FASKES[0][1]},
            "tglCetakKartu": "2016-02-12", "tglTMT": "2014-01-01", "tglTAT": "2099-12-31",
            "umur": {"umurSaatPelayanan": f"{years} tahun", "umurSekarang": f"{years} tahun"}}


def sep_peserta(no_kartu: str, no_mr: str) -> dict[str, Any]:
    """The short ``peserta`` block inside SEP answers."""
    p = person(no_kartu)
    return {"noKartu": no_kartu, "nama": p["nama"], "tglLahir": p["tglLahir"],
            "kelamin": "Laki-Laki" if p["sex"] == "L" else "Perempuan",
            "jnsPeserta": p["jenisPeserta"]["keterangan"],
            "hakKelas": f"Kelas {p['hakKelas']['kode']}", "noMr": no_mr or p["mr"]["noMR"],
            "asuransi": "-"}


def rujukan(no_rujukan: str, on: date, from_rs: bool) -> dict[str, Any]:
    """A referral; its patient, poli and diagnosis follow from the number."""
    h = _h(no_rujukan)
    no_kartu = f"000{h % 10**10:010d}"
    poli = POLI[h % 9]           # outpatient poli only: not IGD, not GIG
    diag = DIAGNOSA[(h >> 4) % len(DIAGNOSA)]
    prov = FASKES[2] if from_rs else FASKES[0]
    return {"noKunjungan": no_rujukan,
            "tglKunjungan": (on - timedelta(days=h % 30)).isoformat(),
            "provPerujuk": {"kode": prov[0], "nama": prov[1]},
            "peserta": peserta(no_kartu, None, on),
            "poliRujukan": {"kode": poli[0], "nama": poli[1]},
            "diagnosa": {"kode": diag[0], "nama": diag[1]},
            "pelayanan": {"kode": "2", "nama": "Rawat Jalan"},
            "keluhan": "kontrol rutin"}


def referral_for_card(no_kartu: str) -> str:
    return f"0138U020{_h('ruj' + no_kartu) % 10**11:011d}"[:19]


def matching(items: tuple[tuple[str, ...], ...], query: str) -> list[dict[str, str]]:
    q = query.lower()
    return [{"kode": i[0], "nama": i[1]} for i in items
            if q in i[0].lower() or q in i[1].lower()]


def poli_name(kode: str) -> str:
    return next((n for k, n in POLI if k.upper() == kode.upper()), kode.upper())


def diagnosa_name(kode: str) -> str:
    return next((f"{k} - {n}" for k, n in DIAGNOSA if k.upper() == kode.upper()), kode)
