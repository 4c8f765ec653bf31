"""Delivery modes over real HTTP against the BPJS simulator: deadline SEP inserts (live
answer, slow answer, connection lost after the SEP was made), passthrough reads with a
fast failure and a stale cache, dedup, coalescing, the bpjs-ok acknowledgement and
backpressure."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import lzstring
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy.app import Tenang
from proxy.bpjs.crypto import decrypt_response
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.config import ConfigError, parse_config
from proxy.delivery.reconcile import Reconciler
from proxy.ids import next_request_id
from proxy.lifecycle import Settlement, Status
from proxy.policies.breaker import BreakerState
from proxy.store.errors import StoreFull
from proxy.store.records import NewRequest, StoredRequest
from proxy.store.sqlite import SqliteDb, sqlite_backend_on
from proxy.store.sqlite.intake import SqliteIntake
from tests.bpjs_support import SECRET_ENV, Simrs, booking, bpjs_config, today
from tests.conftest import admin_headers, wait_until
from tests.integration.metrics_scrape import scrape, v

SEP_INSERT = "/vclaim-rest/SEP/2.0/insert"


def bridging_client_decrypt(cons_id: str, secret: str, timestamp: str, text: str) -> Any:
    """How the Python BPJS clients (bpjs-bridging, pybpjs) decrypt, written out without
    Tenang's own crypto module: SHA-256 key, AES-CBC with the key's first 16 bytes as IV,
    PKCS#7, then lzstring's decompressFromEncodedURIComponent."""
    key = hashlib.sha256((cons_id + secret + timestamp).encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(base64.b64decode(text)) + decryptor.finalize()
    plain = padded[:-padded[-1]].decode()
    return json.loads(lzstring.LZString().decompressFromEncodedURIComponent(plain))


def t_sep(no_kartu: str, *, no_rujukan: str = "0138U0200326P000123") -> dict[str, Any]:
    return {"request": {"t_sep": {
        "noKartu": no_kartu, "tglSep": today(), "ppkPelayanan": "0301R001",
        "jnsPelayanan": "2", "klsRawat": {"klsRawatHak": "2"}, "noMR": "123456",
        "rujukan": {"asalRujukan": "1", "tglRujukan": today(), "noRujukan": no_rujukan,
                    "ppkRujukan": "0138U020"},
        "catatan": "", "diagAwal": "I10", "poli": {"tujuan": "INT", "eksekutif": "0"},
        "user": "Coba Ws"}}}


class Caller:
    """A SIMRS that signs its calls and reads Tenang's answers as BPJS clients do."""

    def __init__(self, http: aiohttp.ClientSession, sim: RunningSimulator, tenang: Tenang,
                 service: str) -> None:
        self.http, self.sim, self.tenang, self.service = http, sim, tenang, service

    async def call(self, method: str, path: str, body: Any = None,
                   extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any,
                                                                 dict[str, str]]:
        headers = {**self.sim.signed_headers(self.service, method=method), **(extra or {})}
        data = None if body is None else json.dumps(body).encode()
        async with self.http.request(method, self.tenang.gateway_url + path, data=data,
                                     headers=headers) as resp:
            doc = await resp.json(content_type=None)
            return resp.status, dict(resp.headers), doc, headers

    async def status_of(self, request_id: str) -> Any:
        async with self.http.get(f"{self.tenang.admin_url}/api/v1/requests/{request_id}",
                                 headers=admin_headers()) as resp:
            return await resp.json()

    async def wait_status(self, request_id: str, status: str) -> Any:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen["doc"] = await self.status_of(request_id)
            return bool(seen["doc"]["status"] == status)

        await wait_until(reached, what=f"{request_id} to become {status}")
        return seen["doc"]


async def vclaim(tmp_path: Path, sim: RunningSimulator, start_tenang: Any,
                 http: aiohttp.ClientSession, **extra: Any) -> Caller:
    tenang = await start_tenang(bpjs_config(tmp_path, sim, "vclaim", **extra))
    return Caller(http, sim, tenang, "vclaim")


# --- deadline mode: SEP insert ----------------------------------------------------------


async def test_sep_insert_with_bpjs_up_returns_the_real_sep_number_once(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    status, headers, doc, sent = await simrs.call("POST", SEP_INSERT, t_sep("0001112223331"))
    assert status == 200 and doc["metaData"]["code"] == "200"
    # Relayed byte for byte: the SIMRS decrypts it with its own timestamp, as usual.
    sep = decrypt_response(doc["response"], bpjs_sim.cons_id, bpjs_sim.secret,
                           sent["X-timestamp"])["sep"]["noSep"]
    assert sep.startswith("0301R001")
    request_id = headers["X-Tenang-Request-Id"]
    stored = await simrs.wait_status(request_id, "succeeded")
    assert stored["attempt_count"] == 1
    assert json.loads(stored["last_response"])["response"]["sep"]["noSep"] == sep
    assert len(await bpjs_sim.log("SEP/2.0/insert")) == 1


async def test_slow_sep_insert_gets_queued_at_the_deadline_and_is_not_sent_again(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http, timeout_s=8.0, routes=[
        {"match": "POST SEP/{v}/insert", "deadline_ms": 300}])
    await bpjs_sim.fault("SEP/2.0/insert", "delay-then-answer", delay_ms=3000)
    started = time.monotonic()
    status, headers, doc, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223332"))
    waited = time.monotonic() - started
    assert status == 202 and doc["metaData"]["code"] == "202"
    # Answered at the 300 ms deadline, long before BPJS's answer at 3 s.
    assert 0.3 <= waited < 2.5
    stored = await simrs.wait_status(headers["X-Tenang-Request-Id"], "succeeded")
    assert stored["attempt_count"] == 1
    assert json.loads(stored["last_response"])["response"]["sep"]["noSep"]
    assert len(await bpjs_sim.log("SEP/2.0/insert")) == 1


async def test_sep_insert_through_a_double_slash_keeps_deadline_mode(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    # A SIMRS whose base URL ends in '/' sends "/vclaim-rest//SEP/2.0/insert": it must
    # still be the SEP insert (live answer, day-bound, reconciled), not a generic write.
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    status, headers, doc, sent = await simrs.call("POST", "/vclaim-rest//SEP/2.0/insert",
                                                  t_sep("0001112223338"))
    assert status == 200 and doc["metaData"]["code"] == "200"
    sep = decrypt_response(doc["response"], bpjs_sim.cons_id, bpjs_sim.secret,
                           sent["X-timestamp"])["sep"]["noSep"]
    assert sep.startswith("0301R001")
    stored = await simrs.wait_status(headers["X-Tenang-Request-Id"], "succeeded")
    assert (stored["path"], stored["endpoint"]) == (SEP_INSERT, "vclaim.sep.insert")
    assert [e["path"] for e in await bpjs_sim.log("SEP/2.0/insert")] == [SEP_INSERT]


class IntakeFailingOnce(SqliteIntake):
    """The real SQLite intake, whose next store of a call fails once with ``error``."""

    error: BaseException | None = None

    async def enqueue_or_match(self, request: NewRequest, settled_window_s: float,
                               now: float) -> StoredRequest | None:
        error, self.error = self.error, None
        if error is not None:
            raise error
        return await super().enqueue_or_match(request, settled_window_s, now)


@pytest.mark.parametrize(("error", "answer"), [
    (StoreFull(), 503), (RuntimeError("a bug in the store"), 500)])
async def test_a_failed_store_write_hands_back_the_half_open_probe(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, error: BaseException, answer: int) -> None:
    cfg = bpjs_config(tmp_path, bpjs_sim, "vclaim")
    db = SqliteDb(cfg.store.sqlite_path)
    store = IntakeFailingOnce(db)
    backend = dataclasses.replace(sqlite_backend_on(db), intake=store)
    simrs = Caller(http, bpjs_sim, await start_tenang(cfg, backend=backend), "vclaim")
    breaker = simrs.tenang.breakers["vclaim"]
    breaker.force_open()
    breaker.release()  # half-open: the next send is the one probe allowed
    assert simrs.tenang.relay is not None
    lane = simrs.tenang.relay.lanes["vclaim"]

    async def lane_idle() -> bool:  # it found nothing to send and gave the probe back
        return lane.waiting_for_work

    await wait_until(lane_idle, what="the relay lane to wait for work")
    store.error = error
    status, _, doc, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223330"))
    assert (status, doc["metaData"]["code"]) == (answer, str(answer))
    assert await bpjs_sim.log("SEP/2.0/insert") == []
    # The probe went back to the breaker, so the next insert is sent (live, or by the
    # relay if it took the probe first); a lost probe would keep the upstream unsent.
    status, headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223330"))
    assert status in (200, 202)
    await simrs.wait_status(headers["X-Tenang-Request-Id"], "succeeded")
    assert len(await bpjs_sim.log("SEP/2.0/insert", outcome="ok")) == 1
    assert breaker.state is BreakerState.CLOSED


async def test_sep_insert_whose_connection_drops_after_bpjs_made_it_is_reconciled(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    await bpjs_sim.fault("SEP/2.0/insert", "reset-after-apply")
    status, headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223333"))
    assert status == 202  # no answer from BPJS: queued, and settled in the background
    stored = await simrs.wait_status(headers["X-Tenang-Request-Id"], "succeeded")
    assert "found by reconciliation" in stored["reason"]
    made = (await bpjs_sim.snapshot())["seps"]
    sep = json.loads(stored["last_response"])["response"]["sep"]["noSep"]
    assert sep in json.dumps(made)
    assert len(await bpjs_sim.log("SEP/2.0/insert")) == 1  # never sent a second time
    assert await bpjs_sim.log("HistoriPelayanan")


async def test_sep_insert_lost_before_bpjs_made_it_is_sent_again_after_checking(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    await bpjs_sim.fault("SEP/2.0/insert", "reset-before-apply")
    _, headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223334"))
    stored = await simrs.wait_status(headers["X-Tenang-Request-Id"], "succeeded")
    assert stored["attempt_count"] == 2
    assert "reconciliation: no SEP for card" in stored["attempts"][0]["error"]
    assert [e["outcome"] for e in await bpjs_sim.log("SEP/2.0/insert")] == ["fault", "ok"]


@pytest.mark.parametrize(("card", "read_path"), [
    # The simulator logs the decoded path: the '?' and '#' are in it, not a query.
    ("0001?x=1#y", "/vclaim-rest/monitoring/HistoriPelayanan/NoKartu/0001?x=1#y/tglMulai/"),
    ("0001/../../Peserta/nokartu/0001", None)])
async def test_reconciliation_reads_only_the_history_of_the_card_it_names(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession, card: str, read_path: str | None) -> None:
    # A card number from the stored body goes into the history path encoded: a '?' or
    # '#' in it stays part of the card, and a '..' is not sent at all (a person decides).
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    upstream = simrs.tenang.config.upstreams[0]
    now = time.time()
    request = StoredRequest(
        id=next_request_id(now), upstream="vclaim", method="POST", path=SEP_INSERT,
        query="", headers=(("user_key", bpjs_sim.signed_headers("vclaim")["user_key"]),),
        body=json.dumps(t_sep(card)).encode(), received_at=now,
        status=Status.IN_FLIGHT, attempts=1, next_attempt_at=None, updated_at=now,
        reason=None)
    finding = await Reconciler(upstream, http, time.time).settle("sep-insert", request)
    reads = [e["path"] for e in await bpjs_sim.log()]
    if read_path is None:
        assert finding.settlement is Settlement.UNKNOWN and reads == []
    else:
        assert finding.settlement is Settlement.ABSENT
        assert len(reads) == 1 and reads[0].startswith(read_path)


async def test_undecidable_sep_insert_is_held_for_a_person(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    # No service type in the body: no history entry can be matched to this visit, so
    # nothing can tell whether BPJS made it (a failed read is retried instead: see
    # test_reconcile_reads.py).
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    await bpjs_sim.fault("SEP/2.0/insert", "reset-after-apply")
    body = t_sep("0001112223335")
    del body["request"]["t_sep"]["jnsPelayanan"]
    _, headers, _, _ = await simrs.call("POST", SEP_INSERT, body)
    stored = await simrs.wait_status(headers["X-Tenang-Request-Id"], "held")
    assert "reconciliation could not tell" in stored["reason"]
    assert len(await bpjs_sim.log("SEP/2.0/insert")) == 1
    assert await bpjs_sim.log("HistoriPelayanan") == []


# --- passthrough reads ------------------------------------------------------------------


async def test_peserta_lookup_fails_fast_while_the_breaker_is_open(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http,
                         breaker={"fail_max": 2, "reset_timeout_s": 60})
    path = f"/vclaim-rest/Peserta/nokartu/0001234567890/tglSEP/{today()}"
    status, _, doc, sent = await simrs.call("GET", path)
    assert status == 200 and doc["metaData"]["code"] == "200"
    peserta = bridging_client_decrypt(bpjs_sim.cons_id, bpjs_sim.secret,
                                      sent["X-timestamp"], doc["response"])
    assert peserta["peserta"]["noKartu"] == "0001234567890"

    await bpjs_sim.set_mode("down", down_style="html")
    for _ in range(2):
        await simrs.call("GET", path)
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        status, headers, doc, _ = await simrs.call("GET", path)
        timings.append(time.perf_counter() - started)
        assert status == 200 and doc["metaData"]["code"] == "503"
        assert headers["X-Tenang-Fallback"] == "circuit-open"
        assert doc["response"] is None
    assert statistics.median(timings) < 0.1
    assert len(await bpjs_sim.log("Peserta")) == 3  # nothing sent while open


async def test_reference_data_is_served_stale_and_re_encrypted_while_bpjs_is_down(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http, routes=[
        {"match": "GET referensi/**", "cache_ttl_s": 3600}])
    _, _, fresh, fresh_sent = await simrs.call("GET", "/vclaim-rest/referensi/poli/INT")
    plain = decrypt_response(fresh["response"], bpjs_sim.cons_id, bpjs_sim.secret,
                             fresh_sent["X-timestamp"])
    await bpjs_sim.set_mode("down", down_style="html")
    # The caller's own, new timestamp (signed, as intake checks it).
    later = bpjs_sim.signed_headers("vclaim", now=time.time() + 7)
    status, headers, stale, sent = await simrs.call("GET", "/vclaim-rest/referensi/poli/INT",
                                                    extra=later)
    assert status == 200 and headers["X-Tenang-Cache"].startswith("stale")
    assert decrypt_response(stale["response"], bpjs_sim.cons_id, bpjs_sim.secret,
                            sent["X-timestamp"]) == plain


async def test_passthrough_reads_are_counted_by_who_answered(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http, routes=[
        {"match": "GET referensi/**", "cache_ttl_s": 3600}])
    peserta = f"/vclaim-rest/Peserta/nokartu/0001234567890/tglSEP/{today()}"
    for path in ("/vclaim-rest/referensi/poli/INT", peserta, peserta):
        assert (await simrs.call("GET", path))[2]["metaData"]["code"] == "200"
    await bpjs_sim.set_mode("down", down_style="html")
    assert "X-Tenang-Cache" in (await simrs.call("GET", "/vclaim-rest/referensi/poli/INT"))[1]
    assert "X-Tenang-Fallback" in (await simrs.call("GET", peserta))[1]
    samples = await scrape(http, simrs.tenang)

    def reads(endpoint: str, answer: str) -> float:
        return v(samples, "tenang_passthrough_reads_total", upstream="vclaim",
                 endpoint=endpoint, answer=answer)

    assert (reads("vclaim.peserta", "upstream"), reads("vclaim.peserta", "fallback"),
            reads("vclaim.referensi", "upstream"), reads("vclaim.referensi", "stale-cache")) \
        == (2, 1, 1, 1)
    assert v(samples, "tenang_passthrough_duration_seconds_count", upstream="vclaim") == 5
    # Reads are not deliveries: the delivery metrics stay at zero.
    assert v(samples, "tenang_delivery_attempt_duration_seconds_count", upstream="vclaim") == 0


# --- dedup, coalescing, acknowledgement, backpressure -----------------------------------


async def test_twenty_identical_antrean_adds_are_delivered_once(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    simrs = Simrs(http, bpjs_sim, await start_tenang(bpjs_config(tmp_path, bpjs_sim)))
    ids = await asyncio.gather(*(simrs.send("POST", "/antreanrs/antrean/add",
                                            booking("KB-DEDUP")) for _ in range(20)))
    assert len(set(ids)) == 1
    await simrs.wait_status(ids[0], "succeeded")
    assert len(await bpjs_sim.log("antrean/add")) == 1


async def test_idempotency_key_returns_the_original_with_its_status(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    cfg = bpjs_config(tmp_path, bpjs_sim, preset="generic")
    tenang = await start_tenang(cfg)
    url = f"{tenang.gateway_url}/antreanrs/antrean/add"
    answers = []
    for _ in range(2):
        async with http.post(url, data=b'{"x": 1}',
                             headers={"Idempotency-Key": "simrs-42"}) as resp:
            answers.append((resp.status, dict(resp.headers), await resp.json()))
    first, second = answers
    assert first[1]["X-Tenang-Request-Id"] == second[1]["X-Tenang-Request-Id"]
    assert second[1]["X-Tenang-Duplicate-Of"] == first[1]["X-Tenang-Request-Id"]
    assert "Already accepted" in second[2]["metadata"]["message"]


async def test_ten_bed_updates_for_one_room_while_down_deliver_only_the_last(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    await bpjs_sim.set_mode("down", aplicare_autocreate=True)
    cfg = bpjs_config(tmp_path, bpjs_sim, name="aplicare", prefix="/aplicaresws",
                      target=bpjs_sim.url + "/aplicaresws", preset="aplicare")
    tenang = await start_tenang(cfg)
    simrs = Simrs(http, bpjs_sim, tenang, "aplicare")
    ids = []
    for n in range(10):
        room = {"kodekelas": "VIP", "koderuang": "R01", "namaruang": "Mawar",
                "kapasitas": 10, "tersedia": n, "tersediapria": 0, "tersediawanita": 0,
                "tersediapriawanita": n}
        ids.append(await simrs.send("POST", "/aplicaresws/rest/bed/update/0301R001", room))
    await bpjs_sim.set_mode("up")
    await simrs.wait_status(ids[-1], "succeeded")
    for old in ids[:-1]:
        doc = await simrs.request(old)
        assert doc["status"] == "cancelled"
        assert doc["reason"].startswith("superseded by a newer update")
    applied = await bpjs_sim.log("bed/update", outcome="ok")
    assert len(applied) == 1 and applied[0]["body"]["tersedia"] == 9


async def test_bpjs_ok_acknowledgement_answers_as_bpjs_would(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    cfg = bpjs_config(tmp_path, bpjs_sim, routes=[
        {"match": "POST antrean/updatewaktu", "ack": "bpjs-ok"}])
    tenang = await start_tenang(cfg, relay_enabled=False)
    body = json.dumps({"kodebooking": "KB-ACK", "taskid": 3, "waktu": 1}).encode()
    async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/updatewaktu",
                         data=body) as resp:
        assert resp.status == 200
        assert await resp.json() == {"metadata": {"code": 200, "message": "Ok."},
                                     "response": None}
        assert resp.headers["X-Tenang-Request-Id"]


async def test_past_the_queue_cap_intake_answers_503_and_loses_nothing(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    await bpjs_sim.set_mode("down")
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, max_pending=5))
    accepted, refused = [], []
    for n in range(12):
        async with http.post(f"{tenang.gateway_url}/antreanrs/antrean/add",
                             data=json.dumps(booking(f"KB-CAP-{n}")),
                             headers=bpjs_sim.signed_headers("antrean", method="POST")) as r:
            doc = await r.json()
            if r.status == 202:
                accepted.append(r.headers["X-Tenang-Request-Id"])
            else:
                assert r.status == 503 and "max_pending" in doc["metadata"]["message"]
                refused.append(n)
    assert len(accepted) == 5 and len(refused) == 7
    await bpjs_sim.set_mode("up")
    simrs = Simrs(http, bpjs_sim, tenang)
    for request_id in accepted:
        await simrs.wait_status(request_id, "succeeded")


def test_bpjs_ok_is_refused_where_the_real_answer_carries_data(tmp_path: Path) -> None:
    raw = {"upstreams": [{"name": "vclaim", "prefix": "/vclaim-rest",
                          "target": "http://127.0.0.1:1/vclaim-rest", "preset": "vclaim",
                          "routes": [{"match": "POST SEP/2.0/insert", "ack": "bpjs-ok"}]}]}
    with pytest.raises(ConfigError, match=r"routes\[0\]\.ack"):
        parse_config(raw, tmp_path, {SECRET_ENV: "x"})


async def test_a_refusal_naming_the_same_visits_sep_is_read_back_and_succeeds(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    body = t_sep("0001112223336")
    headers = bpjs_sim.signed_headers("vclaim", method="POST")
    async with http.post(bpjs_sim.url + SEP_INSERT, data=json.dumps(body),
                         headers=headers) as resp:  # made earlier, e.g. by a re-click
        made = bpjs_sim.decrypt(await resp.json(content_type=None), headers)["sep"]["noSep"]
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    status, answer_headers, doc, _ = await simrs.call("POST", SEP_INSERT, body)
    assert status == 200 and doc["metaData"]["code"] == "201"  # BPJS's answer, relayed
    stored = await simrs.wait_status(answer_headers["X-Tenang-Request-Id"], "succeeded")
    assert json.loads(stored["last_response"])["response"]["sep"]["noSep"] == made


async def test_a_refusal_naming_another_visits_sep_stays_failed(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    other_referral = t_sep("0001112223337", no_rujukan="0138U0200326P000777")
    headers = bpjs_sim.signed_headers("vclaim", method="POST")
    async with http.post(bpjs_sim.url + SEP_INSERT, data=json.dumps(other_referral),
                         headers=headers):
        pass
    simrs = await vclaim(tmp_path, bpjs_sim, start_tenang, http)
    _, answer_headers, _, _ = await simrs.call("POST", SEP_INSERT, t_sep("0001112223337"))
    stored = await simrs.wait_status(answer_headers["X-Tenang-Request-Id"], "failed")
    assert "telah mendapat Pelayanan" in stored["reason"]
