"""One request's own refusal never stalls its upstream: requests BPJS refuses for their
own credentials (here: no user_key, stored before intake refused such writes) end
failed after a few attempts, never open the breaker and are never the half-open probe,
while the good bookings beside them are delivered at once. Over real HTTP against the
BPJS simulator, which answers a missing user_key with 401 "user_key tidak ditemukan"."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from proxy.bpjs.service_day import end_of_service_day
from proxy.bpjs.simulator.harness import RunningSimulator
from proxy.ids import next_request_id
from proxy.store.base import NewRequest
from tests.bpjs_support import Simrs, booking, bpjs_config
from tests.conftest import wait_until
from tests.integration.metrics_scrape import scrape, v

ADD = "/antreanrs/antrean/add"
GOOD, POISONED = 75, 5


async def _store_without_user_key(simrs: Simrs, kode: str) -> str:
    """A write as stored before intake refused one without a user_key (an upgrade)."""
    now = time.time()
    rid = next_request_id(now)
    await simrs.tenang.store.enqueue(NewRequest(
        id=rid, upstream="antrean", method="POST", path=ADD, query="",
        headers=(("Content-Type", "application/json"),),
        body=json.dumps(booking(kode)).encode(), received_at=now, endpoint="antrean.add",
        expires_at=end_of_service_day(now)))
    return rid


async def test_requests_refused_for_their_own_user_key_do_not_starve_the_others(
        tmp_path: Path, bpjs_sim: RunningSimulator, start_tenang: Any,
        http: aiohttp.ClientSession) -> None:
    # fail_max 3: without the fix, the 5 refusals open the breaker, and then come back as
    # its half-open probes and re-open it.
    tenang = await start_tenang(bpjs_config(tmp_path, bpjs_sim, breaker={"fail_max": 3}))
    simrs = Simrs(http, bpjs_sim, tenang)
    poisoned = [await _store_without_user_key(simrs, f"KB-P{i}") for i in range(POISONED)]
    assert tenang.relay is not None
    tenang.relay.wake("antrean")
    good = await asyncio.gather(*(simrs.send("POST", ADD, booking(f"KB-G{i:02d}"))
                                  for i in range(GOOD)))

    async def settled() -> bool:
        docs = [await simrs.request(rid) for rid in good + poisoned]
        return all(d["status"] in ("succeeded", "failed", "dead") for d in docs)

    await wait_until(settled, timeout_s=30, what="every booking to settle")
    seen = await scrape(http, tenang)
    assert v(seen, "tenang_circuit_transitions_total", upstream="antrean", to="open") == 0
    for rid in good:
        doc = await simrs.request(rid)
        assert (doc["status"], doc["attempt_count"]) == ("succeeded", 1)
    limit = tenang.config.upstreams[0].retry.max_own_refusals
    for rid in poisoned:
        doc = await simrs.request(rid)
        assert (doc["status"], doc["attempt_count"]) == ("failed", limit), doc["reason"]
        assert "user_key tidak ditemukan" in doc["reason"]
        assert "own refusal" in doc["reason"]
    refused = await bpjs_sim.log(ADD.removeprefix("/antreanrs/"), outcome="bad-user-key")
    assert len(refused) == POISONED * limit  # a few tries each, not every attempt
