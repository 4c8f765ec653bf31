"""Configuration: TOML loaded once into frozen dataclasses and validated at start.

Unknown keys, wrong types and bad values raise ``ConfigError`` naming the key. This is
the only module that reads environment variables (secrets and the admin token).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from proxy.policies.retry import RetryPolicy

PRESETS = ("vclaim", "antrean", "aplicare", "icare", "generic")
# BPJS services answer in one of two envelope spellings; see ARCHITECTURE.md §5.
ENVELOPE_KEY = {"vclaim": "metaData", "icare": "metaData", "antrean": "metadata",
                "aplicare": "metadata", "generic": "metadata"}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 8080))
    admin_listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 8081))
    max_body_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = "sqlite:///./data/tenang.db"
    busy_timeout_ms: int = 5_000

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))


@dataclass(frozen=True, slots=True)
class AdminConfig:
    token_env: str = "TENANG_ADMIN_TOKEN"
    # Read from the environment variable named by token_env; never written to config.
    token: str | None = field(default=None, metadata={"derived": True}, repr=False)


@dataclass(frozen=True, slots=True)
class RelayConfig:
    lease_margin_s: float = 15.0
    poll_interval_s: float = 1.0
    shutdown_grace_s: float = 10.0
    claim_batch: int = 32


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    fail_max: int = 5
    reset_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RatePolicy:
    per_second: float = 20.0
    max_concurrency: int = 4


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    name: str
    prefix: str
    target: str
    preset: str = "generic"
    cons_id: str = ""
    secret_env: str = ""
    timeout_s: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    rate: RatePolicy = field(default_factory=RatePolicy)
    secret: str | None = field(default=None, metadata={"derived": True}, repr=False)

    @property
    def envelope_key(self) -> str:
        return ENVELOPE_KEY[self.preset]


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    upstreams: tuple[UpstreamConfig, ...] = ()


T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _host_port(value: Any, key: str) -> HostPort:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{key}: expected \"host:port\", got {value!r}")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536 or not host:
        raise ConfigError(f"{key}: expected \"host:port\" with a port 0-65535 "
                          f"(0: any free port), got {value!r}")
    return HostPort(host.strip("[]"), int(port))


def _scalar(value: Any, hint: Any, key: str) -> Any:
    if hint is HostPort:
        return _host_port(value, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if get_origin(hint) is not None and str(get_origin(hint)) == "typing.Literal":
        if value not in get_args(hint):
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, get_args(hint)))}")
        return value
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__}")
    return value


def _build(cls: type[T], raw: Any, key: str) -> T:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: expected a table")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    settable = {n for n, f in fields.items() if not f.metadata.get("derived")}
    unknown = sorted(set(raw) - settable)
    if unknown:
        where = f"{key}." if key else ""
        known = ", ".join(sorted(settable))
        raise ConfigError(f"{where}{unknown[0]}: unknown key (known: {known})")
    values: dict[str, Any] = {}
    for name in settable:
        sub = f"{key}.{name}" if key else name
        hint = hints[name]
        if name not in raw:
            f = fields[name]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{sub}: required")
            continue
        if dataclasses.is_dataclass(hint) and hint is not HostPort:
            values[name] = _build(hint, raw[name], sub)  # type: ignore[arg-type]
        elif get_origin(hint) is tuple:
            item_cls = get_args(hint)[0]
            if not isinstance(raw[name], list):
                raise ConfigError(f"{sub}: expected an array of tables ([[{sub}]])")
            values[name] = tuple(
                _build(item_cls, item, f"{sub}[{i}]") for i, item in enumerate(raw[name])
            )
        else:
            values[name] = _scalar(raw[name], hint, sub)
    return cls(**values)


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _validate_upstream(up: UpstreamConfig, key: str) -> None:
    _check(bool(_NAME.match(up.name)), f"{key}.name", "use lowercase letters, digits, - and _")
    _check(up.prefix.startswith("/") and up.prefix != "/" and not up.prefix.endswith("/"),
           f"{key}.prefix", 'must look like "/antreanrs" (leading /, no trailing /)')
    target = urlsplit(up.target)
    _check(target.scheme in ("http", "https") and bool(target.netloc), f"{key}.target",
           "must be an absolute http(s) URL")
    _check(up.preset in PRESETS, f"{key}.preset", f"must be one of {', '.join(PRESETS)}")
    _check(up.timeout_s > 0, f"{key}.timeout_s", "must be > 0")
    r = up.retry
    _check(r.max_attempts >= 1, f"{key}.retry.max_attempts", "must be >= 1")
    _check(r.initial_delay_s > 0, f"{key}.retry.initial_delay_s", "must be > 0")
    _check(r.max_delay_s >= r.initial_delay_s, f"{key}.retry.max_delay_s",
           "must be >= initial_delay_s")
    _check(r.max_age_s > 0, f"{key}.retry.max_age_s", "must be > 0")
    _check(r.max_retry_after_s >= 0, f"{key}.retry.max_retry_after_s", "must be >= 0")
    _check(up.breaker.fail_max >= 1, f"{key}.breaker.fail_max", "must be >= 1")
    _check(up.breaker.reset_timeout_s > 0, f"{key}.breaker.reset_timeout_s", "must be > 0")
    _check(up.rate.per_second > 0, f"{key}.rate.per_second", "must be > 0")
    _check(up.rate.max_concurrency >= 1, f"{key}.rate.max_concurrency", "must be >= 1")


def _validate(cfg: Config) -> None:
    _check(cfg.server.max_body_bytes > 0, "server.max_body_bytes", "must be > 0")
    _check(cfg.store.url.startswith("sqlite:///"), "store.url",
           'only "sqlite:///PATH" is supported in this version')
    _check(cfg.store.busy_timeout_ms >= 0, "store.busy_timeout_ms", "must be >= 0")
    _check(cfg.relay.lease_margin_s >= 0, "relay.lease_margin_s", "must be >= 0")
    _check(cfg.relay.shutdown_grace_s >= 0, "relay.shutdown_grace_s", "must be >= 0")
    _check(cfg.relay.claim_batch >= 1, "relay.claim_batch", "must be >= 1")
    _check(cfg.relay.poll_interval_s > 0, "relay.poll_interval_s", "must be > 0")
    _check(bool(cfg.upstreams), "upstreams", "configure at least one [[upstreams]]")
    for i, up in enumerate(cfg.upstreams):
        _validate_upstream(up, f"upstreams[{i}]")
    for attr in ("name", "prefix"):
        seen = [getattr(u, attr).lower() for u in cfg.upstreams]
        dupes = sorted({s for s in seen if seen.count(s) > 1})
        _check(not dupes, f"upstreams.{attr}", f"duplicate value {dupes[0] if dupes else ''!r}")


def _resolve(cfg: Config, base_dir: Path, env: Mapping[str, str]) -> Config:
    path = cfg.store.sqlite_path
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    upstreams = tuple(
        dataclasses.replace(u, secret=(env.get(u.secret_env) or None) if u.secret_env else None)
        for u in cfg.upstreams
    )
    return dataclasses.replace(
        cfg,
        store=dataclasses.replace(cfg.store, url=f"sqlite:///{path}"),
        admin=dataclasses.replace(cfg.admin, token=env.get(cfg.admin.token_env) or None),
        upstreams=upstreams,
    )


def parse_config(raw: Mapping[str, Any], base_dir: Path, env: Mapping[str, str]) -> Config:
    cfg = _build(Config, raw, "")
    _validate(cfg)
    return _resolve(cfg, base_dir, env)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate ``path``; relative store paths resolve against its folder."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(raw, path.resolve().parent, os.environ if env is None else env)


def settable_keys(cls: type[Any] = Config, prefix: str = "") -> set[str]:
    """Every dotted key a config file may set (arrays of tables shown without index)."""
    keys: set[str] = set()
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("derived"):
            continue
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        inner = get_args(hint)[0] if get_origin(hint) is tuple else hint
        if dataclasses.is_dataclass(inner) and inner is not HostPort:
            keys |= settable_keys(inner, f"{key}.")  # type: ignore[arg-type]
        else:
            keys.add(key)
    return keys


