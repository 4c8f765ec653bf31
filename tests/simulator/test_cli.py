"""`tenang simulate-bpjs`: argument parsing, and the real command over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from proxy.bpjs.simulator import SettingsError
from proxy.bpjs.simulator.client import content_type, decrypt, signed_headers
from proxy.bpjs.simulator.serve import config_from_args
from proxy.cli import _parser, main


def test_arguments_build_the_config() -> None:
    args = _parser().parse_args([
        "simulate-bpjs", "--listen", "127.0.0.1:0", "--cons-id", "1", "--secret", "s",
        "--latency-ms", "5", "--error-rate", "0.5", "--max-skew-s", "30", "--seed", "7",
        "--mode", "flaky"])
    config, host, port = config_from_args(args)
    assert (host, port) == ("127.0.0.1", 0)
    assert (config.mode, config.latency_ms, config.error_rate, config.max_skew_s,
            config.seed) == ("flaky", 5.0, 0.5, 30.0, 7)


def test_slow_mode_reads_latency_as_the_slow_wait() -> None:
    base = ["simulate-bpjs", "--cons-id", "1", "--secret", "s"]
    slow, _, _ = config_from_args(_parser().parse_args([*base, "--mode", "slow",
                                                        "--latency-ms", "300"]))
    assert (slow.latency_ms, slow.slow_latency_ms) == (0.0, 300.0)
    up, _, _ = config_from_args(_parser().parse_args([*base, "--latency-ms", "300"]))
    assert (up.latency_ms, up.slow_latency_ms) == (300.0, 2000.0)


def test_bad_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["simulate-bpjs", "--cons-id", "1", "--secret", "s"]
    assert main([*base, "--error-rate", "3"]) == 2
    assert "error_rate" in capsys.readouterr().err
    assert main([*base, "--listen", "nowhere"]) == 2
    with pytest.raises(SettingsError):
        config_from_args(_parser().parse_args([*base, "--latency-ms", "-1"]))


def test_client_content_types() -> None:
    assert content_type("vclaim", "POST") == "Application/x-www-form-urlencoded"
    assert content_type("vclaim", "GET").startswith("application/json")
    assert content_type("antrean", "POST") == "application/json"


@pytest.mark.slow
async def test_the_command_serves_signed_requests() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "simulate-bpjs", "--listen", "127.0.0.1:0",
        "--cons-id", "4321", "--secret", "cli-secret",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = line.split(" on ")[1].split()[0]
        headers = signed_headers("4321", "cli-secret", "antrean")
        async with aiohttp.ClientSession() as http, \
                http.get(f"{url}/antreanrs/ref/poli", headers=headers) as resp:
            doc = await resp.json()
        assert doc["metadata"]["code"] == 1
        assert decrypt(doc, "4321", "cli-secret", headers)[0]["kdpoli"] == "INT"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
