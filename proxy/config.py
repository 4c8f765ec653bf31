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
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from proxy.bpjs.presets import UNFORWARDABLE, Override, forwarded_headers
from proxy.config_auth import auth_problems, secret_problems
from proxy.config_ops import (
    AuditConfig,
    MaintenanceConfig,
    MetricsConfig,
    NotifyConfig,
    RetentionConfig,
    retention_problems,
)
from proxy.config_ops import problems as ops_problems
from proxy.config_routes import RouteConfig, route_override, route_problems
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

    def collides(self, other: HostPort) -> bool:
        """Whether the two cannot both be bound: one port on the same or a wildcard host
        (port 0 picks a free port each time, so it never collides)."""
        if self.port == 0 or self.port != other.port:
            return False
        wildcard = ("0.0.0.0", "::", "")
        return self.host == other.host or self.host in wildcard or other.host in wildcard


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 8080))
    admin_listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 8081))
    max_body_bytes: int = 1_048_576
    # Slow and idle clients, per listener (SIMRS and admin port): a request's head must
    # arrive within header_timeout_s of its first byte (a new connection's first head,
    # of the connect), its body within body_timeout_s of the head; an idle keep-alive
    # connection is closed after keepalive_timeout_s; past max_connections open ones a
    # new connection is answered 503 and closed (keep it well under the open-file limit).
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 1024
    # GET /_tenang/requests/{id} on the SIMRS port: bearer token from this env var; with
    # none configured, only loopback clients may look results up.
    results_token_env: str = ""
    # Client addresses (CIDR or single IPs) allowed on both ports; empty: everyone.
    allow_from: tuple[str, ...] = ()
    results_token: str | None = field(default=None, metadata={"derived": True}, repr=False)


SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEME = "postgresql://"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # "sqlite:///PATH" (one file, one instance) or "postgresql://USER@HOST:PORT/DBNAME"
    # (shared by several instances; the password comes from password_env, never the URL).
    url: str = "sqlite:///./data/tenang.db"
    busy_timeout_ms: int = 5_000
    # Below this much free space on the database's disk, intake answers 503 instead of
    # accepting work it may not be able to record the outcome of.
    min_free_mb: int = 64
    # PostgreSQL: apply schema migrations at start. False: `tenang migrate --config FILE`
    # applies them (a deploy step run once, by a role allowed to run DDL), and `serve`
    # refuses a database whose schema is older than it. (A SQLite file is always brought
    # up to date when it is opened: one instance owns it.)
    migrate: bool = True
    # PostgreSQL only: connections per instance (the server's max_connections must cover
    # pool_max times the instances), connect and statement time limits (a statement
    # past statement_timeout_s fails as "store unavailable" instead of hanging intake).
    password_env: str = ""
    pool_min: int = 2
    pool_max: int = 10
    connect_timeout_s: float = 5.0
    statement_timeout_s: float = 30.0
    password: str | None = field(default=None, metadata={"derived": True}, repr=False)
    # From ``[audit] chain``: whether the store extends the hash chain as it writes.
    chain: bool = field(default=True, metadata={"derived": True})
    # Encryption at rest (proxy.store.sealing): the environment variable holding the
    # keyring ("ID:BASE64KEY[,ID:BASE64KEY...]", current key first). Empty: bodies are
    # stored as received. Set but missing from the environment: Tenang refuses to start.
    encryption_key_env: str = ""
    encryption_keys: str | None = field(default=None, metadata={"derived": True}, repr=False)

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith(POSTGRES_SCHEME)

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url.removeprefix(SQLITE_SCHEME))

    @property
    def location(self) -> str:
        """Where the store is, as an operator names it: the SQLite file's path, or the
        PostgreSQL URL (which never holds the password: validation refuses one)."""
        return self.url if self.is_postgres else str(self.sqlite_path)


@dataclass(frozen=True, slots=True)
class AdminUserConfig:
    """An admin UI login declared in the config file (synchronised into the store at
    start, so its lockout state and sessions live beside those of `tenang user add`)."""

    name: str
    role: Literal["viewer", "operator", "auditor", "admin"]
    password_hash: str  # argon2, from `tenang user hash`; never the password itself


@dataclass(frozen=True, slots=True)
class AdminConfig:
    token_env: str = "TENANG_ADMIN_TOKEN"
    session_ttl_s: float = 28_800.0
    cookie_secure: bool = False
    lockout_after: int = 5
    lockout_s: float = 900.0
    ui_refresh_s: float = 5.0
    bulk_batch: int = 100
    bulk_interval_s: float = 1.0
    users: tuple[AdminUserConfig, ...] = ()
    # Read from the environment variable named by token_env; never written to config.
    token: str | None = field(default=None, metadata={"derived": True}, repr=False)


@dataclass(frozen=True, slots=True)
class RelayConfig:
    lease_margin_s: float = 15.0
    poll_interval_s: float = 1.0
    shutdown_grace_s: float = 10.0
    claim_batch: int = 32
    # Succeeded/retried deliveries: one INFO summary per upstream every log_summary_s;
    # true: also an INFO line per delivery (failed, dead, held always get their own).
    log_each_delivery: bool = False
    log_summary_s: float = 10.0


@dataclass(frozen=True, slots=True)
class CallbacksConfig:
    """Sending outcome callbacks (``upstreams.callback_url``): retried with exponential
    backoff (initial_delay_s doubling up to max_delay_s) until max_attempts."""

    max_attempts: int = 10
    initial_delay_s: float = 5.0
    max_delay_s: float = 900.0
    timeout_s: float = 10.0
    poll_interval_s: float = 1.0
    batch: int = 16


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
    # Written as a number (cons_id = 12345) it is read as its digits.
    cons_id: str = field(default="", metadata={"digits": True})
    secret_env: str = ""
    # user_key normally travels with each request; this one fills in when it does not.
    user_key_env: str = ""
    # Intake refuses an X-timestamp further than this from its clock (0: no time check).
    max_skew_s: float = 600.0
    # Opt-out of the required secret (BPJS presets): replays go out unsigned.
    unsigned_replays: bool = False
    timeout_s: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    rate: RatePolicy = field(default_factory=RatePolicy)
    routes: tuple[RouteConfig, ...] = ()
    # Backpressure: past this many pending requests intake answers 503 (0: no cap).
    max_pending: int = 0
    # A resubmission with the same Idempotency-Key or natural key within this window
    # returns the original request instead of a second delivery.
    dedup_window_s: float = 86_400.0
    # HTTP status of Tenang's own fast failure answers to passthrough reads; the body is
    # always a BPJS envelope. 200 suits clients that only read metaData.code (Khanza).
    fail_status: int = 200
    # POST the final outcome of each request here (HMAC-SHA256 signed with the secret
    # from callback_secret_env), retried with backoff. Empty: no callbacks.
    callback_url: str = ""
    callback_secret_env: str = ""
    # Methods accepted on paths no preset endpoint declares (empty: the preset's default,
    # GET/POST/PUT/DELETE for BPJS, plus HEAD and PATCH for generic); others get 405.
    methods: tuple[str, ...] = ()
    # Request headers forwarded (and stored for replay) besides the preset's own list
    # (proxy/intake/headers.py); every other header stays at Tenang.
    forward_headers: tuple[str, ...] = ()
    callback_secret: str | None = field(default=None, metadata={"derived": True},
                                        repr=False)
    secret: str | None = field(default=None, metadata={"derived": True}, repr=False)
    user_key: str | None = field(default=None, metadata={"derived": True}, repr=False)
    # The request headers forwarded and stored (lower-case): the preset's and
    # forward_headers, resolved once at load.
    header_allowlist: frozenset[str] = field(default=frozenset(), metadata={"derived": True})
    overrides: tuple[Override, ...] = field(default=(), metadata={"derived": True})

    @property
    def envelope_key(self) -> str:
        return ENVELOPE_KEY[self.preset]

    @property
    def forwarded(self) -> frozenset[str]:
        """Lower-case names of the request headers this upstream gets."""
        return self.header_allowlist or forwarded_headers(self.preset, self.forward_headers)

    def below_prefix(self, path: str) -> str:
        """The part of a SIMRS path (as matched: prefix case-insensitive) after ``prefix``,
        raw, as endpoint rules and the upstream URL read it."""
        return path[len(self.prefix):]

    @property
    def is_bpjs(self) -> bool:
        return self.preset != "generic"

    @property
    def re_signs(self) -> bool:
        """Whether replays get a fresh timestamp and signature (needs the secret; the
        cons_id comes from config, else from the stored request's X-cons-id)."""
        return bool(self.secret)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    upstreams: tuple[UpstreamConfig, ...] = ()
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)


T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)


def _host_port(value: Any, key: str) -> HostPort:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{key}: expected \"host:port\", got {value!r}")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536 or not host:
        raise ConfigError(f"{key}: expected \"host:port\" with a port 0-65535 "
                          f"(0: any free port), got {value!r}")
    return HostPort(host.strip("[]"), int(port))


def _scalar(value: Any, hint: Any, key: str) -> Any:
    optional = [a for a in get_args(hint) if a is not type(None)]
    if type(None) in get_args(hint) and len(optional) == 1:
        hint = optional[0]  # "X | None": TOML has no null, so a value given is an X
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


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key}: expected an array of non-empty strings")
    return tuple(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
        elif get_origin(hint) is tuple and get_args(hint)[0] is str:
            values[name] = _strings(raw[name], sub)
        elif get_origin(hint) is tuple:
            item_cls = get_args(hint)[0]
            if not isinstance(raw[name], list):
                raise ConfigError(f"{sub}: expected an array of tables ([[{sub}]])")
            values[name] = tuple(
                _build(item_cls, item, f"{sub}[{i}]") for i, item in enumerate(raw[name])
            )
        elif fields[name].metadata.get("digits") and _is_int(raw[name]):
            _check(raw[name] >= 0, sub, "must be digits")
            values[name] = str(raw[name])
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
    _check(r.max_own_refusals >= 1, f"{key}.retry.max_own_refusals", "must be >= 1")
    _check(up.breaker.fail_max >= 1, f"{key}.breaker.fail_max", "must be >= 1")
    _check(up.breaker.reset_timeout_s > 0, f"{key}.breaker.reset_timeout_s", "must be > 0")
    _check(up.rate.per_second > 0, f"{key}.rate.per_second", "must be > 0")
    _check(up.rate.max_concurrency >= 1, f"{key}.rate.max_concurrency", "must be >= 1")
    for sub, message in route_problems(up.preset, up.routes, key):
        raise ConfigError(f"{sub}: {message}")
    _check(up.max_pending >= 0, f"{key}.max_pending", "must be >= 0 (0: no cap)")
    _check(up.dedup_window_s >= 0, f"{key}.dedup_window_s", "must be >= 0")
    _check(200 <= up.fail_status <= 599, f"{key}.fail_status", "must be an HTTP status")
    bad = [m for m in up.methods if not (m.isascii() and m.isalpha())]
    _check(not bad, f"{key}.methods", f"{bad[0] if bad else ''!r} is not an HTTP method")
    bad = [h for h in up.forward_headers if not _TOKEN.fullmatch(h)]
    _check(not bad, f"{key}.forward_headers", f"{bad[0] if bad else ''!r} is not a header name")
    bad = [h for h in up.forward_headers if h.lower() in UNFORWARDABLE]
    _check(not bad, f"{key}.forward_headers", f"{bad[0] if bad else ''!r} is set by Tenang's "
           "HTTP client for its own connection; it cannot be forwarded")
    if up.callback_url:
        cb = urlsplit(up.callback_url)
        _check(cb.scheme in ("http", "https") and bool(cb.netloc), f"{key}.callback_url",
               "must be an absolute http(s) URL")


def _validate_admin(admin: AdminConfig) -> None:
    _check(admin.session_ttl_s > 0, "admin.session_ttl_s", "must be > 0")
    _check(admin.lockout_after >= 1, "admin.lockout_after", "must be >= 1")
    _check(admin.lockout_s >= 0, "admin.lockout_s", "must be >= 0")
    _check(admin.ui_refresh_s > 0, "admin.ui_refresh_s", "must be > 0")
    _check(admin.bulk_batch >= 1, "admin.bulk_batch", "must be >= 1")
    _check(admin.bulk_interval_s >= 0, "admin.bulk_interval_s", "must be >= 0")
    for i, user in enumerate(admin.users):
        key = f"admin.users[{i}]"
        _check(bool(_NAME.match(user.name)), f"{key}.name",
               "use lowercase letters, digits, - and _")
        _check(user.password_hash.startswith("$argon2"), f"{key}.password_hash",
               "must be an argon2 hash (make one with `tenang user hash`)")
    names = [u.name for u in admin.users]
    dupes = sorted({n for n in names if names.count(n) > 1})
    _check(not dupes, "admin.users.name", f"duplicate value {dupes[0] if dupes else ''!r}")


def _validate_callbacks(cb: CallbacksConfig) -> None:
    _check(cb.max_attempts >= 1, "callbacks.max_attempts", "must be >= 1")
    _check(cb.initial_delay_s > 0, "callbacks.initial_delay_s", "must be > 0")
    _check(cb.max_delay_s >= cb.initial_delay_s, "callbacks.max_delay_s",
           "must be >= initial_delay_s")
    _check(cb.timeout_s > 0, "callbacks.timeout_s", "must be > 0")
    _check(cb.poll_interval_s > 0, "callbacks.poll_interval_s", "must be > 0")
    _check(cb.batch >= 1, "callbacks.batch", "must be >= 1")


def postgres_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable "postgresql://USER@HOST:PORT/DBNAME", or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.password is not None:
        return ("holds a password: put it in the environment variable that "
                "store.password_env names (secrets never go in the file)")
    if not parts.hostname:
        return 'names no host: "postgresql://USER@HOST:PORT/DBNAME"'
    if not parts.path.strip("/") or "/" in parts.path.strip("/"):
        return 'names no database: "postgresql://USER@HOST:PORT/DBNAME"'
    if port == 0:
        return "port 0 is not a PostgreSQL port"
    return None


def _validate_store(store: StoreConfig) -> None:
    if store.is_postgres:
        problem = postgres_url_problem(store.url)
        _check(problem is None, "store.url", problem or "")
    else:
        _check(store.url.startswith(SQLITE_SCHEME), "store.url",
               'must be "sqlite:///PATH" or "postgresql://USER@HOST:PORT/DBNAME"')
    _check(store.busy_timeout_ms >= 0, "store.busy_timeout_ms", "must be >= 0")
    _check(store.min_free_mb >= 0, "store.min_free_mb", "must be >= 0")
    _check(store.pool_min >= 1, "store.pool_min", "must be >= 1")
    _check(store.pool_max >= store.pool_min, "store.pool_max", "must be >= store.pool_min")
    _check(store.connect_timeout_s > 0, "store.connect_timeout_s", "must be > 0")
    _check(store.statement_timeout_s > 0, "store.statement_timeout_s", "must be > 0")


def _resolve_store(store: StoreConfig, base_dir: Path, env: Mapping[str, str]) -> StoreConfig:
    """A relative SQLite path resolved against the config's folder; the PostgreSQL
    password read from the environment."""
    if store.encryption_key_env:
        keys = _secret(env, store.encryption_key_env)
        _check(keys is not None, "store.encryption_key_env",
               f"environment variable {store.encryption_key_env} is not set (encryption at "
               "rest is on: Tenang never falls back to storing bodies in plaintext)")
        store = dataclasses.replace(store, encryption_keys=keys)
    if store.is_postgres:
        return dataclasses.replace(store, password=_secret(env, store.password_env))
    path = store.sqlite_path
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    return dataclasses.replace(store, url=f"{SQLITE_SCHEME}{path}")


def _validate(cfg: Config) -> None:
    _validate_admin(cfg.admin)
    _validate_callbacks(cfg.callbacks)
    _check(cfg.server.max_body_bytes > 0, "server.max_body_bytes", "must be > 0")
    for key in ("header_timeout_s", "body_timeout_s", "keepalive_timeout_s"):
        _check(getattr(cfg.server, key) > 0, f"server.{key}", "must be > 0")
    _check(cfg.server.max_connections >= 1, "server.max_connections", "must be >= 1")
    _check(not cfg.server.admin_listen.collides(cfg.server.listen), "server.admin_listen",
           f"must use another port than server.listen ({cfg.server.listen})")
    _validate_store(cfg.store)
    _check(cfg.relay.lease_margin_s >= 0, "relay.lease_margin_s", "must be >= 0")
    _check(cfg.relay.shutdown_grace_s >= 0, "relay.shutdown_grace_s", "must be >= 0")
    _check(cfg.relay.claim_batch >= 1, "relay.claim_batch", "must be >= 1")
    _check(cfg.relay.poll_interval_s > 0, "relay.poll_interval_s", "must be > 0")
    _check(cfg.relay.log_summary_s > 0, "relay.log_summary_s", "must be > 0")
    _check(bool(cfg.upstreams), "upstreams", "configure at least one [[upstreams]]")
    for i, up in enumerate(cfg.upstreams):
        _validate_upstream(up, f"upstreams[{i}]")
    for attr in ("name", "prefix"):
        seen = [getattr(u, attr).lower() for u in cfg.upstreams]
        dupes = sorted({s for s in seen if seen.count(s) > 1})
        _check(not dupes, f"upstreams.{attr}", f"duplicate value {dupes[0] if dupes else ''!r}")
    for key, message in ops_problems(cfg.metrics, cfg.maintenance, cfg.notify):
        raise ConfigError(f"{key}: {message}")
    for key, message in retention_problems(cfg.retention):
        raise ConfigError(f"{key}: {message}")
    for key, message in auth_problems(cfg.server, cfg.upstreams):
        raise ConfigError(f"{key}: {message}")


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """The value of the environment variable ``name`` (None when unnamed or empty)."""
    return (env.get(name) or None) if name else None


def _notify_secrets(n: NotifyConfig, env: Mapping[str, str]) -> NotifyConfig:
    return dataclasses.replace(
        n, webhook=dataclasses.replace(n.webhook, secret=_secret(env, n.webhook.secret_env)),
        telegram=dataclasses.replace(n.telegram, token=_secret(env, n.telegram.token_env)),
        smtp=dataclasses.replace(n.smtp, password=_secret(env, n.smtp.password_env)))


def _resolve(cfg: Config, base_dir: Path, env: Mapping[str, str]) -> Config:
    upstreams = tuple(
        dataclasses.replace(
            u, secret=(env.get(u.secret_env) or None) if u.secret_env else None,
            user_key=(env.get(u.user_key_env) or None) if u.user_key_env else None,
            callback_secret=_secret(env, u.callback_secret_env),
            methods=tuple(m.upper() for m in u.methods),
            header_allowlist=forwarded_headers(u.preset, u.forward_headers),
            overrides=tuple(route_override(r) for r in u.routes))
        for u in cfg.upstreams
    )
    return dataclasses.replace(
        cfg,
        store=dataclasses.replace(_resolve_store(cfg.store, base_dir, env),
                                  chain=cfg.audit.chain),
        server=dataclasses.replace(cfg.server,
                                   results_token=_secret(env, cfg.server.results_token_env)),
        admin=dataclasses.replace(cfg.admin, token=env.get(cfg.admin.token_env) or None),
        upstreams=upstreams,
        metrics=dataclasses.replace(cfg.metrics, token=_secret(env, cfg.metrics.token_env)),
        notify=_notify_secrets(cfg.notify, env),
    )


def parse_config(raw: Mapping[str, Any], base_dir: Path, env: Mapping[str, str]) -> Config:
    cfg = _build(Config, raw, "")
    _validate(cfg)
    for key, message in secret_problems(cfg.upstreams, env):
        raise ConfigError(f"{key}: {message}")
    _check(not cfg.store.password_env or bool(env.get(cfg.store.password_env)),
           "store.password_env", f"{cfg.store.password_env} is not set in the environment")
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


