"""Configuration loading: the example file, unknown keys, types, values, paths, secrets."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from proxy.config import ConfigError, load_config, parse_config, settable_keys

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"

MINIMAL_TOML = """
[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "https://example.test/antreanrs"
"""


def minimal() -> dict[str, Any]:
    return {"upstreams": [{"name": "antrean", "prefix": "/antreanrs",
                           "target": "https://example.test/antreanrs"}]}


def write(tmp_path: Path, text: str, name: str = "tenang.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fails_naming(key: str) -> Any:
    """pytest.raises for a ConfigError whose message starts with ``key:``."""
    return pytest.raises(ConfigError, match=rf"^{re.escape(key)}: ")


def with_value(dotted: str, value: Any) -> dict[str, Any]:
    """The minimal config with one key set; ``upstreams.x`` sets it on the first upstream,
    ``upstreams.routes.x`` on a route of it."""
    raw = minimal()
    table: dict[str, Any] = raw
    parts = dotted.split(".")
    if parts[0] == "upstreams":
        table, parts = raw["upstreams"][0], parts[1:]
    if parts[0] == "routes":
        table["routes"] = [{"match": "POST antrean/add"}]
        table, parts = table["routes"][0], parts[1:]
    for part in parts[:-1]:
        table = table.setdefault(part, {})
    table[parts[-1]] = value
    return raw


def dotted_keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            keys |= dotted_keys(value, f"{key}.")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                keys |= dotted_keys(item, f"{key}.")
        else:
            keys.add(key)
    return keys


# --- the example file ---------------------------------------------------------------


def test_example_config_loads_as_is() -> None:
    env = {"TENANG_ADMIN_TOKEN": "tok", "TENANG_ANTREAN_SECRET": "s3cret"}
    cfg = load_config(EXAMPLE, env)
    assert str(cfg.server.listen) == "127.0.0.1:8080"
    assert [u.name for u in cfg.upstreams] == ["antrean"]
    up = cfg.upstreams[0]
    assert up.prefix == "/antreanrs"
    assert up.preset == "antrean"
    assert up.retry.jitter == "full"
    assert up.secret == "s3cret"
    assert cfg.admin.token == "tok"


def commented_users(text: str) -> list[dict[str, Any]]:
    """The commented-out [[admin.users]] example, parsed."""
    lines = text.splitlines()
    start = lines.index("# [[admin.users]]") + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line.removeprefix("# "))
    return [tomllib.loads("\n".join(block))]


def test_example_config_ships_no_admin_account() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "users" not in tomllib.loads(text).get("admin", {})
    assert not re.search(r"^[^#]*password_hash", text, flags=re.M)
    [user] = commented_users(text)
    assert set(user) == {"name", "role", "password_hash"}
    assert "tenang user add NAME --role admin --config FILE" in text


def test_example_config_sets_every_settable_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    raw["admin"]["users"] = commented_users(text)  # documented, but not shipped live
    in_file = dotted_keys(raw)
    expected = settable_keys()
    assert in_file - expected == set(), "example sets keys that do not exist"
    assert expected - in_file == set(), "example misses settable keys"


def test_settable_keys_exclude_secrets() -> None:
    keys = settable_keys()
    assert "upstreams.secret" not in keys
    assert "admin.token" not in keys
    assert {"upstreams.secret_env", "admin.token_env", "upstreams.retry.jitter"} <= keys


# --- unknown keys ---------------------------------------------------------------------


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "bogus = 1\n" + MINIMAL_TOML)
    with fails_naming("bogus"):
        load_config(path, {})


def test_unknown_key_in_a_section_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nlisten_port = 8080\n" + MINIMAL_TOML)
    with fails_naming("server.listen_port"):
        load_config(path, {})


def test_unknown_key_nested_in_an_upstream_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_TOML + "[upstreams.retry]\nbogus = 3\n")
    with fails_naming("upstreams[0].retry.bogus"):
        load_config(path, {})


def test_unknown_key_in_second_upstream_names_its_index() -> None:
    raw = minimal()
    raw["upstreams"].append({"name": "vclaim", "prefix": "/vclaim-rest",
                             "target": "https://example.test/vclaim", "colour": "red"})
    with fails_naming("upstreams[1].colour"):
        parse_config(raw, Path("."), {})


# --- wrong types ------------------------------------------------------------------------


@pytest.mark.parametrize(("dotted", "value"), [
    ("server.max_body_bytes", "big"),
    ("server.max_body_bytes", True),
    ("server.max_body_bytes", 1.5),
    ("relay.claim_batch", False),
    ("relay.poll_interval_s", True),
    ("relay.poll_interval_s", "1s"),
    ("store.url", 5),
    ("upstreams.timeout_s", "30"),
    ("upstreams.name", 7),
    ("upstreams.retry.max_attempts", True),
    ("upstreams.retry.jitter", "partial"),
    ("upstreams.breaker.fail_max", 2.0),
])
def test_wrong_type_names_the_key(dotted: str, value: Any) -> None:
    key = dotted.replace("upstreams.", "upstreams[0].", 1).replace(".routes.", ".routes[0].")
    with fails_naming(key):
        parse_config(with_value(dotted, value), Path("."), {})


def test_wrong_type_in_file_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nmax_body_bytes = "big"\n' + MINIMAL_TOML)
    with fails_naming("server.max_body_bytes"):
        load_config(path, {})


def test_section_that_is_not_a_table_is_named() -> None:
    raw = minimal()
    raw["server"] = 5
    with fails_naming("server"):
        parse_config(raw, Path("."), {})


def test_upstreams_as_single_table_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL_TOML.replace("[[upstreams]]", "[upstreams]")
    with fails_naming("upstreams"):
        load_config(write(tmp_path, text), {})


def test_int_is_accepted_where_float_expected() -> None:
    cfg = parse_config(with_value("upstreams.timeout_s", 5), Path("."), {})
    assert cfg.upstreams[0].timeout_s == 5.0
    assert isinstance(cfg.upstreams[0].timeout_s, float)


# --- bad values -------------------------------------------------------------------------


NUMERIC_KEYS = [
    "server.max_body_bytes",
    "server.header_timeout_s",
    "server.body_timeout_s",
    "server.keepalive_timeout_s",
    "server.max_connections",
    "store.busy_timeout_ms",
    "store.pool_min",
    "store.pool_max",
    "store.connect_timeout_s",
    "store.statement_timeout_s",
    "relay.lease_margin_s",
    "relay.poll_interval_s",
    "relay.shutdown_grace_s",
    "relay.claim_batch",
    "relay.log_summary_s",
    "upstreams.timeout_s",
    "upstreams.retry.max_attempts",
    "upstreams.retry.initial_delay_s",
    "upstreams.retry.max_delay_s",
    "upstreams.retry.max_age_s",
    "upstreams.retry.max_retry_after_s",
    "upstreams.retry.max_own_refusals",
    "upstreams.breaker.fail_max",
    "upstreams.breaker.reset_timeout_s",
    "upstreams.rate.per_second",
    "upstreams.rate.max_concurrency",
    "admin.session_ttl_s",
    "admin.lockout_after",
    "admin.lockout_s",
    "admin.ui_refresh_s",
    "admin.bulk_batch",
    "admin.bulk_interval_s",
    "maintenance.ramp_s",
    "maintenance.check_interval_s",
    "notify.breaker_open_after_s",
    "notify.oldest_pending_after_s",
    "notify.window_s",
    "notify.check_interval_s",
    "notify.timeout_s",
    "notify.retry_attempts",
    "notify.retry_initial_delay_s",
    "notify.retry_max_delay_s",
    "notify.queue_size",
    "notify.smtp.port",
    "store.min_free_mb",
    "upstreams.max_pending",
    "upstreams.dedup_window_s",
    "upstreams.max_skew_s",
    "upstreams.fail_status",
    "upstreams.routes.deadline_ms",
    "upstreams.routes.cache_ttl_s",
    "callbacks.max_attempts",
    "callbacks.initial_delay_s",
    "callbacks.max_delay_s",
    "callbacks.timeout_s",
    "callbacks.poll_interval_s",
    "callbacks.batch",
    "retention.bodies_after_days",
    "retention.rows_after_days",
    "retention.batch_size",
]


def test_numeric_key_list_covers_every_number_in_the_example() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    flat: dict[str, Any] = {}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for k, v in table.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif isinstance(v, list):
                for item in v:
                    walk(item, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(raw, "")
    numbers = {k for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    assert numbers == set(NUMERIC_KEYS)


@pytest.mark.parametrize("dotted", NUMERIC_KEYS)
def test_negative_number_is_rejected_naming_the_key(dotted: str) -> None:
    key = dotted.replace("upstreams.", "upstreams[0].", 1).replace(".routes.", ".routes[0].")
    value: int | float = -1 if dotted.endswith(("bytes", "_ms", "batch", "attempts",
                                                "fail_max", "concurrency")) else -1.0
    with fails_naming(key):
        parse_config(with_value(dotted, value), Path("."), {})


@pytest.mark.parametrize("dotted", ["server.listen", "server.admin_listen"])
@pytest.mark.parametrize("value", ["nope", "127.0.0.1:99999", ":8080", "127.0.0.1:http"])
def test_bad_listen_address_is_named(dotted: str, value: str) -> None:
    with fails_naming(dotted):
        parse_config(with_value(dotted, value), Path("."), {})


def test_listen_accepts_port_zero_and_ipv6() -> None:
    raw = minimal()
    raw["server"] = {"listen": "127.0.0.1:0", "admin_listen": "[::1]:9000"}
    cfg = parse_config(raw, Path("."), {})
    assert (cfg.server.listen.host, cfg.server.listen.port) == ("127.0.0.1", 0)
    assert (cfg.server.admin_listen.host, cfg.server.admin_listen.port) == ("::1", 9000)


@pytest.mark.parametrize(("dotted", "value"), [
    ("upstreams.preset", "foo"),
    ("upstreams.prefix", "antreanrs"),
    ("upstreams.prefix", "/antreanrs/"),
    ("upstreams.prefix", "/"),
    ("upstreams.target", "ftp://example.test/x"),
    ("upstreams.target", "example.test/antreanrs"),
    ("upstreams.target", "/antreanrs"),
    ("upstreams.name", "Antrean RS"),
    ("upstreams.timeout_s", 0.0),
    ("store.url", "postgres://db/tenang"),
])
def test_bad_value_is_named(dotted: str, value: Any) -> None:
    key = dotted.replace("upstreams.", "upstreams[0].", 1).replace(".routes.", ".routes[0].")
    with fails_naming(key):
        parse_config(with_value(dotted, value), Path("."), {})


def test_max_delay_below_initial_delay_is_rejected() -> None:
    raw = with_value("upstreams.retry", {"initial_delay_s": 10.0, "max_delay_s": 5.0})
    with fails_naming("upstreams[0].retry.max_delay_s"):
        parse_config(raw, Path("."), {})


def test_no_upstreams_is_rejected(tmp_path: Path) -> None:
    with fails_naming("upstreams"):
        load_config(write(tmp_path, '[server]\nlisten = "127.0.0.1:8080"\n'), {})
    with fails_naming("upstreams"):
        parse_config({"upstreams": []}, Path("."), {})


def test_missing_required_upstream_key_is_named() -> None:
    raw = minimal()
    del raw["upstreams"][0]["target"]
    with fails_naming("upstreams[0].target"):
        parse_config(raw, Path("."), {})


@pytest.mark.parametrize(("attr", "first", "second"), [
    ("name", "antrean", "antrean"),
    ("prefix", "/antreanrs", "/antreanrs"),
    ("prefix", "/antreanrs", "/AntreanRS"),
])
def test_duplicate_upstream_names_and_prefixes_are_rejected(
        attr: str, first: str, second: str) -> None:
    a = {"name": "a", "prefix": "/a", "target": "https://example.test/a"}
    b = {"name": "b", "prefix": "/b", "target": "https://example.test/b"}
    a[attr], b[attr] = first, second
    with fails_naming(f"upstreams.{attr}"):
        parse_config({"upstreams": [a, b]}, Path("."), {})


def test_two_distinct_upstreams_are_accepted() -> None:
    raw = minimal()
    raw["upstreams"].append({"name": "vclaim", "prefix": "/vclaim-rest", "preset": "vclaim",
                             "target": "http://example.test/vclaim", "cons_id": "12345",
                             "secret_env": "VCLAIM_SECRET"})
    cfg = parse_config(raw, Path("."), {"VCLAIM_SECRET": "s3cret"})
    assert [u.name for u in cfg.upstreams] == ["antrean", "vclaim"]
    assert cfg.upstreams[1].envelope_key == "metaData"


def test_unreadable_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", {})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[server\n"), {})


# --- paths ------------------------------------------------------------------------------


def test_relative_sqlite_path_resolves_against_config_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc" / "tenang"
    path = write(conf_dir, '[store]\nurl = "sqlite:///./data/t.db"\n' + MINIMAL_TOML)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path(path), {})
    assert cfg.store.sqlite_path == (conf_dir / "data" / "t.db").resolve()
    assert cfg.store.sqlite_path.is_absolute()


def test_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    db = (tmp_path / "abs" / "t.db").resolve()
    path = write(tmp_path / "conf", f'[store]\nurl = "sqlite:///{db}"\n' + MINIMAL_TOML)
    assert load_config(path, {}).store.sqlite_path == db


# --- secrets ----------------------------------------------------------------------------


def test_secret_and_token_come_from_the_named_env_vars() -> None:
    raw = minimal()
    raw["upstreams"][0]["secret_env"] = "MY_SECRET"
    raw["admin"] = {"token_env": "MY_TOKEN"}
    env = {"MY_SECRET": "s3cret", "MY_TOKEN": "tok",
           "TENANG_ADMIN_TOKEN": "wrong", "TENANG_ANTREAN_SECRET": "wrong"}
    cfg = parse_config(raw, Path("."), env)
    assert cfg.upstreams[0].secret == "s3cret"
    assert cfg.admin.token == "tok"


def test_missing_or_empty_env_var_gives_no_secret() -> None:
    raw = minimal()
    raw["upstreams"][0]["secret_env"] = "MY_SECRET"
    cfg = parse_config(raw, Path("."), {"MY_SECRET": "", "TENANG_ADMIN_TOKEN": ""})
    assert cfg.upstreams[0].secret is None
    assert cfg.admin.token is None
    assert parse_config(minimal(), Path("."), {}).upstreams[0].secret is None


def test_no_secret_env_means_no_secret_even_if_env_has_empty_name() -> None:
    cfg = parse_config(minimal(), Path("."), {"": "leak"})
    assert cfg.upstreams[0].secret is None


def test_load_config_reads_the_given_env_not_os_environ(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANG_ADMIN_TOKEN", "from-process")
    cfg = load_config(write(tmp_path, MINIMAL_TOML), {"TENANG_ADMIN_TOKEN": "from-mapping"})
    assert cfg.admin.token == "from-mapping"


def test_secret_in_file_is_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_TOML + 'secret = "s3cret"\n')
    with fails_naming("upstreams[0].secret"):
        load_config(path, {})


def test_token_in_file_is_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[admin]\ntoken = "tok"\n' + MINIMAL_TOML)
    with fails_naming("admin.token"):
        load_config(path, {})


def test_upstream_secret_is_not_in_repr() -> None:
    raw = minimal()
    raw["upstreams"][0]["secret_env"] = "MY_SECRET"
    cfg = parse_config(raw, Path("."), {"MY_SECRET": "s3cret-value"})
    assert "s3cret-value" not in repr(cfg)


def test_parse_config_does_not_modify_its_input() -> None:
    raw = minimal()
    before = copy.deepcopy(raw)
    parse_config(raw, Path("."), {})
    assert raw == before


# --- command line -----------------------------------------------------------------------


def run_check_config(path: Path, env: dict[str, str] | None = None
                     ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "check-config", "--config", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )


def test_check_config_accepts_the_example() -> None:
    result = run_check_config(EXAMPLE, {"TENANG_ANTREAN_SECRET": "s3cret"})
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "antrean" in result.stdout


def test_check_config_rejects_a_broken_file_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_TOML + "[upstreams.retry]\nmax_atempts = 3\n")
    result = run_check_config(path)
    assert result.returncode == 2
    assert "upstreams[0].retry.max_atempts" in result.stderr


@pytest.mark.parametrize(("field", "value"), [
    ("match", ""), ("match", "P0ST! antrean/add"), ("mode", "later"),
    ("encrypted", "maybe"), ("expires", "tomorrow"), ("ack", "ok"),
])
def test_bad_route_values_are_named(field: str, value: str) -> None:
    raw = minimal()
    route = {"match": "POST antrean/add", field: value}
    raw["upstreams"][0]["routes"] = [route]
    with fails_naming(f"upstreams[0].routes[0].{field}"):
        parse_config(raw, Path("."), {})


def test_a_route_overrides_the_preset_it_matches() -> None:
    raw = minimal()
    raw["upstreams"][0]["routes"] = [{"match": "POST antrean/updatewaktu", "mode": "deadline",
                                      "deadline_ms": 1500, "ordering_key": "a, b"}]
    up = parse_config(raw, Path("."), {}).upstreams[0]
    [override] = up.overrides
    assert (override.method, override.pattern, override.deadline_ms, override.ordering_key) \
        == ("POST", "antrean/updatewaktu", 1500, ("a", "b"))


@pytest.mark.parametrize(("match", "says"), [
    ("POTS antrean/updatewaktu", "unknown HTTP method 'POTS'"),
    ("GETT antrean/**", "unknown HTTP method 'GETT'"),
    ("POST antrean/update waktu", "expected \"METHOD path/pattern\""),
    ("POST", "expected \"METHOD path/pattern\""),
])
def test_a_route_method_or_path_typo_is_named(match: str, says: str) -> None:
    raw = minimal()
    raw["upstreams"][0]["routes"] = [{"match": "POST antrean/add"}, {"match": match}]
    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        parse_config(raw, Path("."), {})
    assert str(caught.value).startswith("upstreams[0].routes[1].match: ")
    assert match in str(caught.value)


@pytest.mark.parametrize("match", ["post antrean/add", "* antrean/**", "antrean/add",
                                   "DELETE antrean/batal", "PUT x/{id}"])
def test_known_methods_and_bare_paths_are_accepted(match: str) -> None:
    raw = minimal()
    raw["upstreams"][0]["routes"] = [{"match": match}]
    assert parse_config(raw, Path("."), {}).upstreams[0].overrides


def test_cons_id_written_as_a_number_is_read_as_its_digits(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_TOML + "cons_id = 12345\n")
    assert load_config(path, {}).upstreams[0].cons_id == "12345"
    assert parse_config(with_value("upstreams.cons_id", "0012"), Path("."),
                        {}).upstreams[0].cons_id == "0012"


@pytest.mark.parametrize("value", [-5, 1.5, True])
def test_cons_id_that_is_not_digits_is_named(value: Any) -> None:
    with fails_naming("upstreams[0].cons_id"):
        parse_config(with_value("upstreams.cons_id", value), Path("."), {})


@pytest.mark.parametrize(("listen", "admin", "clash"), [
    ("127.0.0.1:8080", "127.0.0.1:8080", True),
    ("0.0.0.0:8080", "127.0.0.1:8080", True),
    ("127.0.0.1:8080", "[::]:8080", True),
    ("127.0.0.1:8080", "127.0.0.1:8081", False),
    ("127.0.0.1:8080", "10.0.0.5:8080", False),
    ("127.0.0.1:0", "127.0.0.1:0", False),
])
def test_admin_listen_must_not_share_the_simrs_port(listen: str, admin: str,
                                                    clash: bool) -> None:
    raw = minimal()
    raw["server"] = {"listen": listen, "admin_listen": admin}
    if clash:
        with fails_naming("server.admin_listen"):
            parse_config(raw, Path("."), {})
    else:
        assert str(parse_config(raw, Path("."), {}).server.listen) == listen
