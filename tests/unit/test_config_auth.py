"""Config for who may send: a BPJS upstream's identity and secret are required (issue
11.3, with the unsigned_replays opt-out), max_skew_s and server.allow_from are checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from proxy.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]


def bpjs(**upstream: Any) -> dict[str, Any]:
    up = {"name": "antrean", "prefix": "/antreanrs", "preset": "antrean",
          "target": "https://example.test/antreanrs", "cons_id": "12345",
          "secret_env": "MY_SECRET", **upstream}
    return {"upstreams": [{k: v for k, v in up.items() if v is not None}]}


def fails_naming(key: str, *words: str) -> Any:
    pattern = rf"^{re.escape(key)}: " + "".join(rf"(?=.*{re.escape(w)})" for w in words)
    return pytest.raises(ConfigError, match=pattern)


@pytest.mark.parametrize("preset", ["vclaim", "antrean", "aplicare", "icare"])
def test_a_bpjs_preset_without_secret_env_is_an_error(preset: str) -> None:
    with fails_naming("upstreams[0].secret_env", preset, "unsigned_replays"):
        parse_config(bpjs(preset=preset, secret_env=None), Path("."), {})


@pytest.mark.parametrize("env", [{}, {"MY_SECRET": ""}])
def test_an_unset_or_empty_secret_variable_is_an_error_naming_it(env: dict[str, str]) -> None:
    with fails_naming("upstreams[0].secret_env", "MY_SECRET", "not set or empty"):
        parse_config(bpjs(), Path("."), env)


def test_a_set_secret_is_read() -> None:
    cfg = parse_config(bpjs(), Path("."), {"MY_SECRET": "s3cret"})
    assert cfg.upstreams[0].secret == "s3cret"
    assert cfg.upstreams[0].max_skew_s == 600.0
    assert cfg.upstreams[0].unsigned_replays is False


def test_unsigned_replays_is_the_explicit_opt_out() -> None:
    cfg = parse_config(bpjs(secret_env=None, unsigned_replays=True), Path("."), {})
    assert cfg.upstreams[0].secret is None


def test_unsigned_replays_with_a_secret_env_is_contradictory() -> None:
    with fails_naming("upstreams[0].unsigned_replays", "secret_env"):
        parse_config(bpjs(unsigned_replays=True), Path("."), {"MY_SECRET": "s3cret"})


def test_a_generic_upstream_needs_no_identity() -> None:
    cfg = parse_config(bpjs(preset="generic", cons_id=None, secret_env=None), Path("."), {})
    assert cfg.upstreams[0].secret is None


@pytest.mark.parametrize("unsigned", [False, True])
def test_a_bpjs_preset_needs_its_cons_id(unsigned: bool) -> None:
    raw = bpjs(cons_id=None, **({"secret_env": None, "unsigned_replays": True}
                                if unsigned else {}))
    with fails_naming("upstreams[0].cons_id", "X-cons-id"):
        parse_config(raw, Path("."), {"MY_SECRET": "s3cret"})


def test_max_skew_zero_turns_the_time_check_off_and_negative_is_refused() -> None:
    cfg = parse_config(bpjs(max_skew_s=0), Path("."), {"MY_SECRET": "s"})
    assert cfg.upstreams[0].max_skew_s == 0.0
    with fails_naming("upstreams[0].max_skew_s"):
        parse_config(bpjs(max_skew_s=-1.0), Path("."), {"MY_SECRET": "s"})


def test_allow_from_takes_addresses_and_networks() -> None:
    raw = bpjs()
    raw["server"] = {"allow_from": ["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"]}
    cfg = parse_config(raw, Path("."), {"MY_SECRET": "s"})
    assert cfg.server.allow_from == ("10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8")
    assert parse_config(bpjs(), Path("."), {"MY_SECRET": "s"}).server.allow_from == ()


@pytest.mark.parametrize(("value", "key"), [
    (["10.0.0.0/8", "10.0.0.300"], "server.allow_from[1]"),
    (["lan"], "server.allow_from[0]"),
    ([8], "server.allow_from"),
    ("10.0.0.0/8", "server.allow_from"),
])
def test_a_bad_allow_from_entry_is_named(value: Any, key: str) -> None:
    raw = bpjs()
    raw["server"] = {"allow_from": value}
    with fails_naming(key):
        parse_config(raw, Path("."), {"MY_SECRET": "s"})


# --- both commands refuse the missing secret ----------------------------------------------

CONFIG = """
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
url = "sqlite:///./tenang.db"

[[upstreams]]
name = "vclaim"
prefix = "/vclaim-rest"
target = "https://example.test/vclaim-rest"
preset = "vclaim"
cons_id = "12345"
secret_env = "TENANG_VCLAIM_SECRET_FOR_TEST"
"""


def test_check_config_warns_about_unsigned_replays(tmp_path: Path) -> None:
    path = tmp_path / "tenang.toml"
    path.write_text(CONFIG.replace('secret_env = "TENANG_VCLAIM_SECRET_FOR_TEST"',
                                   "unsigned_replays = true"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "proxy", "check-config", "--config",
                             str(path)], cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "warning: upstream vclaim: unsigned_replays = true" in result.stdout
    assert "CANNOT verify the SIMRS's X-signature" in result.stdout


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_check_config_and_serve_refuse_a_missing_secret(tmp_path: Path, command: str) -> None:
    path = tmp_path / "tenang.toml"
    path.write_text(CONFIG, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TENANG_VCLAIM_SECRET_FOR_TEST"}
    env["TENANG_ADMIN_TOKEN"] = "tok"
    result = subprocess.run([sys.executable, "-m", "proxy", command, "--config", str(path)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "upstreams[0].secret_env" in result.stderr
    assert "TENANG_VCLAIM_SECRET_FOR_TEST is not set" in result.stderr
    assert "ready on" not in result.stdout
    assert not (tmp_path / "tenang.db").exists()
