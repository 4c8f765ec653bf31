"""Signature, cons-id, user_key and timestamp checks, with each service's 401 envelope."""

from __future__ import annotations

import aiohttp
import pytest

from proxy.bpjs.crypto import DecryptError
from proxy.bpjs.signature import sign
from proxy.bpjs.simulator.harness import RunningSimulator

from .conftest import Simrs

PESERTA = "Peserta/nokartu/0001234567890/tglSEP/2026-03-02"


async def test_signed_request_is_accepted_and_logged_ok(simrs: Simrs) -> None:
    reply = await simrs.get("vclaim", PESERTA)
    assert reply.status == 200
    assert reply.meta == {"code": "200", "message": "OK"}
    [entry] = await simrs.sim.log()
    assert entry["outcome"] == "ok" and entry["method"] == "GET"
    assert entry["path"] == "/vclaim-rest/" + PESERTA


async def test_header_names_match_case_insensitively(simrs: Simrs) -> None:
    headers = {k.upper(): v for k, v in simrs.sim.signed_headers("vclaim").items()}
    reply = await simrs.get("vclaim", PESERTA, headers=headers)
    assert reply.meta["code"] == "200"


async def test_bad_signature_gets_401_vclaim_envelope(simrs: Simrs) -> None:
    headers = simrs.sim.signed_headers("vclaim")
    headers["X-signature"] = sign(simrs.sim.cons_id, "wrong-secret", headers["X-timestamp"])
    reply = await simrs.get("vclaim", PESERTA, headers=headers)
    assert reply.status == 401
    assert reply.doc == {"metaData": {"code": "401",
                                      "message": "Unauthorized! Signature tidak valid"},
                         "response": None}
    assert [e["outcome"] for e in await simrs.sim.log()] == ["bad-signature"]


async def test_unknown_cons_id_is_refused_with_numeric_code_for_antrean(simrs: Simrs) -> None:
    sim = simrs.sim
    headers = sim.signed_headers("antrean")
    headers["X-cons-id"] = "99999"
    headers["X-signature"] = sign("99999", sim.secret, headers["X-timestamp"])
    reply = await simrs.get("antrean", "ref/poli", headers=headers)
    assert reply.status == 401
    assert reply.doc["metadata"]["code"] == 401
    assert "99999" in reply.message and reply.doc["response"] is None


async def test_missing_headers_and_user_key_are_refused(simrs: Simrs) -> None:
    reply = await simrs.get("icare", "api/rs/validate", headers={})
    assert reply.status == 401 and reply.doc["metaData"]["code"] == 401
    headers = simrs.sim.signed_headers("aplicare")
    del headers["user_key"]
    reply = await simrs.get("aplicare", "rest/ref/kelas", headers=headers)
    assert reply.status == 401 and "user_key" in reply.message
    assert [e["outcome"] for e in await simrs.sim.log()] == ["bad-signature", "bad-user-key"]


async def test_timestamp_outside_max_skew_is_refused(simrs: Simrs) -> None:
    sim: RunningSimulator = simrs.sim
    await sim.set_mode(max_skew_s=5)
    now = 1_770_000_000.0
    sim.state.clock = lambda: now
    assert (await simrs.get("vclaim", PESERTA,
                            headers=sim.signed_headers("vclaim", now=now - 5))).status == 200
    stale = sim.signed_headers("vclaim", now=now - 120)
    reply = await simrs.get("vclaim", PESERTA, headers=stale)
    assert reply.status == 401 and reply.code == "401"
    assert stale["X-timestamp"] in reply.message
    future = await simrs.get("antrean", "ref/poli",
                             headers=sim.signed_headers("antrean", now=now + 60))
    assert future.status == 401 and future.code == 401
    outcomes = [e["outcome"] for e in await sim.log()]
    assert outcomes == ["ok", "stale-timestamp", "stale-timestamp"]


async def test_without_max_skew_an_old_timestamp_is_accepted(simrs: Simrs) -> None:
    old = simrs.sim.signed_headers("vclaim", now=1_600_000_000)
    assert (await simrs.get("vclaim", PESERTA, headers=old)).status == 200


async def test_answer_is_encrypted_with_the_callers_timestamp(simrs: Simrs) -> None:
    reply = await simrs.get("vclaim", PESERTA)
    assert isinstance(reply.doc["response"], str)
    assert reply.plain()["peserta"]["noKartu"] == "0001234567890"
    other = dict(reply.sent_headers, **{"X-timestamp": "1"})
    with pytest.raises(DecryptError):
        simrs.sim.decrypt(reply.doc, other)


async def test_a_refused_user_key_gets_401_and_others_pass() -> None:
    from proxy.bpjs.simulator import SimConfig
    from proxy.bpjs.simulator.harness import start_simulator

    sim = await start_simulator(SimConfig(cons_id="1234", secret="s3cret",
                                          refused_user_keys=("antrean-key",)))
    try:
        async with aiohttp.ClientSession() as http:
            simrs = Simrs(sim, http)
            wrong = await simrs.get("vclaim", PESERTA, headers=sim.signed_headers(
                "vclaim", user_key="antrean-key"))  # another service's key
            right = await simrs.get("vclaim", PESERTA)
    finally:
        await sim.close()
    assert (wrong.status, wrong.message) == (401, "Unauthorized! user_key tidak valid")
    assert right.status == 200
