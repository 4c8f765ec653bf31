"""VClaim: reads, SEP insert and its duplicate, read-back, update/delete (plain), and the
reconciliation reads a proxy uses after an ambiguous insert."""

from __future__ import annotations

import re

from .conftest import Simrs, t_sep

NO_SEP = re.compile(r"^0301R001(\d{2})(\d{2})V(\d{6})$")


async def test_peserta_by_card_and_nik_are_deterministic(simrs: Simrs) -> None:
    first = (await simrs.get("vclaim", "Peserta/nokartu/0001234567890/tglSEP/2026-03-02")).plain()
    again = (await simrs.get("vclaim", "peserta/NOKARTU/0001234567890/tglsep/2026-03-02")).plain()
    assert first == again
    assert first["peserta"]["noKartu"] == "0001234567890"
    assert first["peserta"]["statusPeserta"]["keterangan"] == "AKTIF"
    by_nik = await simrs.get("vclaim", "Peserta/nik/3201012345678901/tglSEP/2026-03-02")
    assert by_nik.plain()["peserta"]["nik"] == "3201012345678901"
    bad = await simrs.get("vclaim", "Peserta/nokartu/123/tglSEP/2026-03-02")
    assert bad.code == "201" and bad.doc["response"] is None


async def test_rujukan_reads_and_invalid_referral(simrs: Simrs) -> None:
    fktp = await simrs.get("vclaim", "Rujukan/0138U0200326P000123")
    assert fktp.plain()["rujukan"]["noKunjungan"] == "0138U0200326P000123"
    rs = await simrs.get("vclaim", "Rujukan/RS/0114R0090326B000001")
    assert rs.plain()["rujukan"]["provPerujuk"]["kode"] == "0114R009"
    by_card = await simrs.get("vclaim", "Rujukan/Peserta/0001234567890")
    assert by_card.plain()["rujukan"]["peserta"]["noKartu"] == "0001234567890"
    invalid = await simrs.get("vclaim", "Rujukan/INVALID0001")
    assert invalid.meta == {"code": "201", "message": "Rujukan tidak valid"}


async def test_referensi_lists(simrs: Simrs) -> None:
    poli = (await simrs.get("vclaim", "referensi/poli/INT")).plain()
    assert {"kode": "INT", "nama": "PENYAKIT DALAM"} in poli["poli"]
    diag = (await simrs.get("vclaim", "referensi/diagnosa/I10")).plain()
    assert diag["diagnosa"][0]["kode"] == "I10"
    dpjp = await simrs.get("vclaim",
                           "referensi/dokter/pelayanan/2/tglPelayanan/2026-03-02/Spesialis/INT")
    assert dpjp.plain()["list"][0]["kode"] == "31537"
    none = await simrs.get("vclaim", "referensi/poli/ZZZZ")
    assert none.code == "201"


async def test_sep_insert_returns_encrypted_new_number(simrs: Simrs) -> None:
    reply = await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    assert reply.meta == {"code": "200", "message": "Sukses"}
    sep = reply.plain()["sep"]
    match = NO_SEP.match(sep["noSep"])
    assert match is not None and match.groups() == ("03", "26", "000001")
    assert sep["peserta"]["noKartu"] == "0001234567890" and sep["jnsPelayanan"] == "R.Jalan"
    assert reply.sent_headers["Content-Type"] == "Application/x-www-form-urlencoded"
    [entry] = await simrs.sim.log()
    assert entry["body"] == t_sep()           # parsed as JSON despite the form label
    second = await simrs.post("vclaim", "SEP/2.0/insert", t_sep(no_kartu="0009999999999"))
    assert second.plain()["sep"]["noSep"].endswith("V000002")


async def test_same_day_same_poli_insert_is_refused_naming_the_sep(simrs: Simrs) -> None:
    no_sep = (await simrs.post("vclaim", "SEP/2.0/insert", t_sep())).plain()["sep"]["noSep"]
    dup = await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    assert dup.code == "201" and dup.doc["response"] is None
    assert dup.message.endswith(
        f"Peserta NoKa 0001234567890 telah mendapat Pelayanan R.Jalan di Poli INT pada hari "
        f"yg sama di RS SIMULASI TENANG Dgn No.SEP {no_sep}")
    other_poli = await simrs.post("vclaim", "SEP/2.0/insert", t_sep(poli="MAT"))
    assert other_poli.code == "200"
    outcomes = [e["outcome"] for e in await simrs.sim.log()]
    assert outcomes == ["ok", "duplicate", "ok"]
    assert len((await simrs.sim.snapshot())["seps"]) == 2


async def test_open_inpatient_sep_blocks_a_second_one(simrs: Simrs) -> None:
    first = await simrs.post("vclaim", "SEP/2.0/insert", t_sep(jns="1", poli=""))
    no_sep = first.plain()["sep"]["noSep"]
    dup = await simrs.post("vclaim", "SEP/2.0/insert", t_sep(jns="1", poli="",
                                                             tgl="2026-03-04"))
    assert dup.code == "201"
    assert "R.Inap pada tgl. 02/03/2026 dan belum dipulangkan" in dup.message
    assert dup.message.endswith(f"Dgn No.SEP {no_sep}")
    discharge = {"request": {"t_sep": {"noSep": no_sep, "statusPulang": "1",
                                       "tglPulang": "2026-03-03", "user": "x"}}}
    done = await simrs.send("PUT", "vclaim", "SEP/2.0/updtglplg", discharge)
    assert done.meta == {"code": "200", "message": "Sukses"} and done.doc["response"] is None
    again = await simrs.post("vclaim", "SEP/2.0/insert", t_sep(jns="1", poli="",
                                                               tgl="2026-03-04"))
    assert again.code == "200"


async def test_invalid_referral_and_missing_fields_are_refused(simrs: Simrs) -> None:
    bad = await simrs.post("vclaim", "SEP/2.0/insert", t_sep(no_rujukan="INVALID-123"))
    assert bad.meta == {"code": "201", "message": "Rujukan tidak valid"}
    body = t_sep()
    del body["request"]["t_sep"]["noKartu"]
    missing = await simrs.post("vclaim", "SEP/2.0/insert", body)
    assert missing.code == "201" and "noKartu" in missing.message
    assert [e["outcome"] for e in await simrs.sim.log()] == ["rejected", "rejected"]
    assert (await simrs.sim.snapshot())["seps"] == []


async def test_read_back_update_and_delete(simrs: Simrs) -> None:
    no_sep = (await simrs.post("vclaim", "SEP/2.0/insert", t_sep())).plain()["sep"]["noSep"]
    read = await simrs.get("vclaim", f"SEP/{no_sep}")
    assert read.plain()["noSep"] == no_sep and read.plain()["tglSep"] == "2026-03-02"
    update = {"request": {"t_sep": {"noSep": no_sep, "catatan": "ubah", "user": "x"}}}
    updated = await simrs.send("PUT", "vclaim", "SEP/2.0/update", update)
    assert updated.doc == {"metaData": {"code": "200", "message": "Sukses"},
                           "response": no_sep}                    # plain, not encrypted
    assert (await simrs.get("vclaim", f"sep/{no_sep}")).plain()["catatan"] == "ubah"
    delete = {"request": {"t_sep": {"noSep": no_sep, "user": "x"}}}
    deleted = await simrs.send("DELETE", "vclaim", "SEP/2.0/delete", delete)
    assert deleted.doc["response"] == no_sep and deleted.code == "200"
    twice = await simrs.send("DELETE", "vclaim", "SEP/2.0/delete", delete)
    assert twice.code == "201" and no_sep in twice.message
    gone = await simrs.get("vclaim", f"SEP/{no_sep}")
    assert gone.code == "201"
    [sep] = (await simrs.sim.snapshot())["seps"]
    assert sep["deleted"] is True and sep["updates"] == 1
    assert [e["outcome"] for e in await simrs.sim.log(method="DELETE")] == ["ok", "duplicate"]


async def test_reconciliation_reads_find_the_issued_sep(simrs: Simrs) -> None:
    missing = await simrs.get("vclaim", "Rujukan/lastsep/norujukan/0138U0200326P000123")
    assert missing.code == "201"
    no_sep = (await simrs.post("vclaim", "SEP/2.0/insert", t_sep())).plain()["sep"]["noSep"]
    last = await simrs.get("vclaim", "Rujukan/lastsep/norujukan/0138U0200326P000123")
    assert last.plain()["noSep"] == no_sep
    histori = await simrs.get("vclaim", "monitoring/HistoriPelayanan/NoKartu/0001234567890"
                                        "/tglMulai/2026-03-01/tglAkhir/2026-03-31")
    [item] = histori.plain()["histori"]
    assert item["noSep"] == no_sep and item["noKartu"] == "0001234567890"
    outside = await simrs.get("vclaim", "monitoring/HistoriPelayanan/NoKartu/0001234567890"
                                        "/tglMulai/2026-04-01/tglAkhir/2026-04-30")
    assert outside.code == "201"
    visits = await simrs.get("vclaim", "Monitoring/Kunjungan/Tanggal/2026-03-02/JnsPelayanan/2")
    assert [s["noSep"] for s in visits.plain()["sep"]] == [no_sep]


async def test_sep_cbg_answers_plain(simrs: Simrs) -> None:
    no_sep = (await simrs.post("vclaim", "SEP/2.0/insert", t_sep())).plain()["sep"]["noSep"]
    cbg = await simrs.get("vclaim", f"sep/cbg/{no_sep}")
    assert cbg.doc["response"]["noSep"] == no_sep


async def test_unknown_path_and_prefix_answer_html_404(simrs: Simrs) -> None:
    reply = await simrs.get("vclaim", "Nope/else")
    assert reply.status == 404 and reply.doc is None and "<html>" in reply.text
    other = await simrs.get("vclaim", "x", prefix="/vclaim-katalog")
    assert other.status == 404
    wrong_method = await simrs.send("PATCH", "vclaim", "SEP/2.0/insert", t_sep())
    assert wrong_method.status == 405
    outcomes = [e["outcome"] for e in await simrs.sim.log()]
    assert outcomes == ["not-found", "not-found", "method-not-allowed"]


async def test_prefix_is_case_insensitive_and_dev_prefix_works(simrs: Simrs) -> None:
    upper = await simrs.get("vclaim", "referensi/poli/INT", prefix="/VClaim-Rest")
    dev = await simrs.get("vclaim", "referensi/poli/INT", prefix="/vclaim-rest-dev")
    assert upper.code == dev.code == "200"
