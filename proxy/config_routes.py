"""``[[upstreams.routes]]``: config overrides of a preset's endpoint table, and their
validation (kept out of proxy.config, which only loads and checks the whole file)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from proxy.bpjs.presets import (
    ACK_BPJS_OK,
    ACK_STYLES,
    EXPIRY_RULES,
    GENERIC_READ,
    GENERIC_WRITE,
    Mode,
    Override,
    builtin,
    parse_match,
    sample_path,
)

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "*")
_METHOD = re.compile(r"^(\*|[A-Z]+)$")


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """Overrides the preset for requests matching ``match`` ("POST antrean/add");
    empty values keep the preset's."""

    match: str
    name: str = ""
    mode: str = ""
    encrypted: str = ""  # "yes" / "no"
    ordering_key: str = ""  # comma-separated body fields, e.g. "kodebooking"
    dedup_key: str = ""
    expires: str = ""  # "end-of-service-day"
    deadline_ms: int = 0  # deadline mode: how long the SIMRS waits for the live answer
    ack: str = ""  # "accepted" (HTTP 202) or "bpjs-ok" (what BPJS answers a data-less write)
    cache_ttl_s: float = 0.0  # passthrough reads: serve the last good answer this long
    coalesce_key: str = ""  # comma-separated body fields: pending updates collapse to newest


def _fields(text: str) -> tuple[str, ...] | None:
    if not text:
        return None
    return tuple(f.strip() for f in text.split(",") if f.strip())


def route_override(route: RouteConfig) -> Override:
    method, pattern = parse_match(route.match)
    return Override(
        method=method, pattern=pattern, name=route.name,
        mode=Mode(route.mode) if route.mode else None,
        encrypted={"yes": True, "no": False}.get(route.encrypted),
        ordering_key=_fields(route.ordering_key), dedup_key=_fields(route.dedup_key),
        expires=route.expires or None, deadline_ms=route.deadline_ms or None,
        ack=route.ack or None, cache_ttl_s=route.cache_ttl_s or None,
        coalesce_key=_fields(route.coalesce_key),
    )


def route_problems(preset: str, routes: tuple[RouteConfig, ...],
                   key: str) -> Iterator[tuple[str, str]]:
    """(key, message) for every invalid route; ``proxy.config`` raises on the first."""
    modes = [m.value for m in Mode]
    for i, route in enumerate(routes):
        at = f"{key}.routes[{i}]"
        method, pattern = parse_match(route.match)
        bare_method = method == "*" and pattern.upper() in METHODS  # "POST", no path
        if (not pattern or bare_method or any(c.isspace() for c in pattern)
                or not _METHOD.match(method)):
            yield f"{at}.match", ('expected "METHOD path/pattern" or "path/pattern", '
                                  f'e.g. "POST antrean/add", got {route.match!r}')
        elif method not in METHODS:
            # A typo such as "POTS" would match nothing, silently.
            yield f"{at}.match", (f"unknown HTTP method {method!r} in {route.match!r} "
                                  f"(one of {', '.join(METHODS)})")
        if route.mode not in ("", *modes):
            yield f"{at}.mode", f"must be one of {', '.join(modes)}"
        if route.encrypted not in ("", "yes", "no"):
            yield f"{at}.encrypted", 'must be "yes" or "no"'
        if route.expires not in EXPIRY_RULES:
            yield f"{at}.expires", f"must be one of {', '.join(map(repr, EXPIRY_RULES))}"
        if route.ack not in ("", *ACK_STYLES):
            yield f"{at}.ack", f"must be one of {', '.join(map(repr, ACK_STYLES))}"
        if route.deadline_ms < 0:
            yield f"{at}.deadline_ms", "must be >= 0"
        if route.cache_ttl_s < 0:
            yield f"{at}.cache_ttl_s", "must be >= 0"
        if route.ack == ACK_BPJS_OK and route.mode in ("", *modes):
            # "bpjs-ok" pretends BPJS already answered: only honest where that answer
            # carries no data and the request is queued (the SIMRS never waits for it).
            rule = route_override(route).apply(
                builtin(preset, "POST" if method == "*" else method, sample_path(pattern)))
            if not (rule.data_less and rule.mode is Mode.QUEUE):
                yield f"{at}.ack", ('"bpjs-ok" is only allowed on queued routes whose BPJS '
                                    f"success answer carries no data ({rule.name} does)")


def unmatched_routes(preset: str, routes: tuple[RouteConfig, ...], key: str) -> Iterator[str]:
    """Notes for valid routes that match none of a BPJS preset's endpoints: most often a
    path typo ("antrean/updatewaktuu"), which would never apply. Only a note, since a
    route may well cover an endpoint BPJS added after this preset was written."""
    if preset == "generic":
        return
    for i, route in enumerate(routes):
        method, pattern = parse_match(route.match)
        methods = ("GET", "POST") if method == "*" else (method,)
        path = sample_path(pattern)
        if all(builtin(preset, m, path) in (GENERIC_READ, GENERIC_WRITE) for m in methods):
            yield (f"{key}.routes[{i}].match {route.match!r} matches none of the {preset} "
                   "preset's endpoints: check the path (it applies only to requests "
                   "for exactly such a path)")
