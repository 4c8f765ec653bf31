"""The /_sim control API: log and its filters, reset, settings validation, state."""

from __future__ import annotations

import pytest
from yarl import URL

from .conftest import Simrs, t_sep


async def test_log_lists_every_request_with_filters(simrs: Simrs) -> None:
    await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    await simrs.get("antrean", "ref/poli", headers={})
    async with simrs.http.post(f"{simrs.sim.url}/antreanrs/antrean/add", data=b"a=1&b=2",
                               headers=simrs.sim.signed_headers("antrean")) as resp:
        assert (await resp.json())["metadata"]["code"] == 201
    log = await simrs.sim.log()
    assert [e["seq"] for e in log] == [1, 2, 3, 4]
    assert [e["outcome"] for e in log] == ["ok", "duplicate", "bad-signature", "rejected"]
    assert set(log[0]) >= {"method", "path", "body", "time", "outcome"}
    assert log[0]["headers"]["user_key"] and log[0]["service"] == "vclaim"
    assert log[0]["target"] == "/vclaim-rest/SEP/2.0/insert"    # as sent on the wire
    assert log[3]["body"] == "a=1&b=2"                          # not JSON: kept as text
    assert len(await simrs.sim.log(path_contains="sep/2.0/INSERT")) == 2
    assert [e["seq"] for e in await simrs.sim.log(outcome="duplicate")] == [2]
    assert [e["seq"] for e in await simrs.sim.log(method="get")] == [3]


async def test_log_time_uses_the_simulator_clock(simrs: Simrs) -> None:
    simrs.sim.state.clock = lambda: 1_770_000_000.0
    await simrs.get("antrean", "ref/poli")
    [entry] = await simrs.sim.log()
    assert entry["time"] == 1_770_000_000.0


async def test_reset_clears_records_log_faults_and_restores_settings(simrs: Simrs) -> None:
    await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    await simrs.sim.fault("x", "html-500")
    await simrs.sim.set_mode("down", max_skew_s=10)
    await simrs.sim.reset()
    snapshot = await simrs.sim.snapshot()
    assert snapshot["seps"] == [] and snapshot["faults"] == []
    assert snapshot["settings"]["mode"] == "up" and snapshot["settings"]["max_skew_s"] is None
    assert await simrs.sim.log() == []
    again = await simrs.post("vclaim", "SEP/2.0/insert", t_sep())
    assert again.plain()["sep"]["noSep"].endswith("V000001")      # serials restart too


@pytest.mark.parametrize("body", [
    {"mode": "sideways"}, {"error_rate": 2}, {"latency_ms": -1}, {"latency_ms": "1"},
    {"nonsense": 1}, {"down_style": "fire"}, {"aplicare_autocreate": 1},
])
async def test_bad_settings_are_refused_and_change_nothing(simrs: Simrs,
                                                           body: dict[str, object]) -> None:
    before = await simrs.sim.snapshot()
    async with simrs.http.post(f"{simrs.sim.url}/_sim/mode", json=body) as resp:
        assert resp.status == 400
        assert "error" in await resp.json()
    assert (await simrs.sim.snapshot())["settings"] == before["settings"]


async def test_get_mode_and_partial_update(simrs: Simrs) -> None:
    settings = await simrs.sim.set_mode(error_rate=0.1)
    assert settings["mode"] == "up" and settings["error_rate"] == 0.1
    async with simrs.http.get(f"{simrs.sim.url}/_sim/mode") as resp:
        assert (await resp.json())["error_rate"] == 0.1


async def test_state_shows_bookings_with_task_ids(simrs: Simrs) -> None:
    from .test_antrean import at, booking, task

    await simrs.post("antrean", "antrean/add", booking())
    await task(simrs, 3, at(8))
    [state] = (await simrs.sim.snapshot())["bookings"]
    assert state["kodebooking"] == "KB0001" and state["task_ids"] == [3]
    assert state["tasks"][0]["waktu"] == at(8)


async def test_bodies_on_get_are_read_and_logged(simrs: Simrs) -> None:
    reply = await simrs.send("GET", "antrean", "ref/poli", {"filter": "INT"})
    assert reply.code == 1
    [entry] = await simrs.sim.log()
    assert entry["body"] == {"filter": "INT"}


async def test_log_keeps_the_request_target_as_sent(simrs: Simrs) -> None:
    target = URL(f"{simrs.sim.url}/antreanrs/ref/poli?a=%2F&b=c%20d", encoded=True)
    async with simrs.http.get(target, headers=simrs.sim.signed_headers("antrean")) as resp:
        assert resp.status == 200
    [entry] = await simrs.sim.log()
    assert entry["target"] == "/antreanrs/ref/poli?a=%2F&b=c%20d"
    assert entry["query"] == "a=/&b=c d"
