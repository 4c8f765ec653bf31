"""Simulator configuration: a frozen start-up config and the knobs tests turn at run time.

``SimConfig`` is what the command line (or a test) starts the simulator with. ``Settings``
is the mutable copy the control API changes (``POST /_sim/mode``); ``POST /_sim/reset``
restores it from the config. Durations carry their unit in the name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any, Literal, get_args

from proxy.bpjs.service_day import WIB

Mode = Literal["up", "down", "slow", "flaky"]
MODES: tuple[str, ...] = get_args(Mode)

# How an outage (`down`) or a flaky failure looks to the client. "mixed" draws html or
# reset per request from the seeded RNG; "mixed-all" adds timeouts, which cost the caller
# its whole client timeout, so it is opt-in.
DownStyle = Literal["mixed", "mixed-all", "html", "reset", "timeout"]
DOWN_STYLES: tuple[str, ...] = get_args(DownStyle)
FlakyStyle = Literal["mixed", "html", "reset", "timeout"]
FLAKY_STYLES: tuple[str, ...] = get_args(FlakyStyle)

JAKARTA = WIB  # BPJS's clock: the service day is a Jakarta day


class SettingsError(ValueError):
    """A control-API or command-line value is out of range; the message names the key."""


def jakarta_now(now: float) -> datetime:
    return datetime.fromtimestamp(now, JAKARTA)


def jakarta_date(now: float) -> date:
    return jakarta_now(now).date()


@dataclass(frozen=True)
class SimConfig:
    """Start-up configuration. Only ``cons_id`` and ``secret`` are required."""

    cons_id: str
    secret: str
    mode: Mode = "up"
    latency_ms: float = 0.0          # every answer in up/flaky mode waits this long
    slow_latency_ms: float = 2000.0  # what `slow` mode waits instead
    error_rate: float = 0.3          # share of requests `flaky` mode fails
    down_style: DownStyle = "mixed"
    flaky_style: FlakyStyle = "mixed"
    timeout_hang_s: float = 60.0     # a "timeout" holds the connection this long
    max_skew_s: float | None = None  # None: any timestamp is accepted (BPJS's window is unknown)
    seed: int = 0
    require_user_key: bool = True
    # user_keys this BPJS refuses (revoked, or another service's: each service has its
    # own), answered 401 "user_key tidak valid" like a missing one.
    refused_user_keys: tuple[str, ...] = ()
    # Aplicare answers `Data tidak ada di database.` to an update of an unknown room, as
    # observed; True creates the room instead (a lenient BPJS, for demos).
    aplicare_autocreate: bool = False
    icare_throttle_s: float = 0.0    # > 0: a second validate within this window gets 412
    check_service_date: bool = True  # Antrean `waktu` must fall on the booking's date
    hospital_name: str = "RS SIMULASI TENANG"

    def __post_init__(self) -> None:
        if not self.cons_id or not self.secret:
            raise SettingsError("cons_id and secret must not be empty")
        Settings.from_config(self)  # validates the runtime knobs once, at start


@dataclass
class Settings:
    """The knobs ``POST /_sim/mode`` may change while the simulator runs."""

    mode: Mode
    latency_ms: float
    slow_latency_ms: float
    error_rate: float
    down_style: DownStyle
    flaky_style: FlakyStyle
    timeout_hang_s: float
    max_skew_s: float | None
    aplicare_autocreate: bool
    icare_throttle_s: float

    @classmethod
    def from_config(cls, config: SimConfig) -> Settings:
        names = {f.name for f in fields(cls)}
        settings = cls(**{n: getattr(config, n) for n in names})
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.mode not in MODES:
            raise SettingsError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.down_style not in DOWN_STYLES:
            raise SettingsError(f"down_style must be one of {DOWN_STYLES}")
        if self.flaky_style not in FLAKY_STYLES:
            raise SettingsError(f"flaky_style must be one of {FLAKY_STYLES}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise SettingsError("error_rate must be between 0 and 1")
        for name in ("latency_ms", "slow_latency_ms", "timeout_hang_s", "icare_throttle_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise SettingsError(f"{name} must be a non-negative number")
        if self.max_skew_s is not None and not self.max_skew_s >= 0:
            raise SettingsError("max_skew_s must be a non-negative number or null")

    def updated(self, doc: Mapping[str, Any]) -> Settings:
        """A validated copy with ``doc``'s keys applied; unknown keys and bad types fail.

        ``{"mode": "slow", "latency_ms": N}`` (without ``slow_latency_ms``) sets the slow
        wait to N: asking for a slow BPJS with a latency means that latency.
        """
        doc = slow_alias(doc)
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in doc.items():
            if key not in known:
                raise SettingsError(f"unknown setting {key!r}; known: {sorted(known)}")
            changes[key] = _coerce(key, value)
        result = replace(self, **changes)
        result.validate()
        return result

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def slow_alias(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    if doc.get("mode") == "slow" and "latency_ms" in doc and "slow_latency_ms" not in doc:
        return {("slow_latency_ms" if k == "latency_ms" else k): v for k, v in doc.items()}
    return doc


_TEXT = {"mode", "down_style", "flaky_style"}
_BOOL = {"aplicare_autocreate"}


def _coerce(key: str, value: Any) -> Any:
    if key in _TEXT:
        if not isinstance(value, str):
            raise SettingsError(f"{key} must be a string")
        return value
    if key in _BOOL:
        if not isinstance(value, bool):
            raise SettingsError(f"{key} must be true or false")
        return value
    if value is None and key == "max_skew_s":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{key} must be a number")
    return float(value)
