"""Configuration checks for who may send through Tenang (issue 11.1, 11.3): the BPJS
identity each preset upstream needs, its consumer secret, and ``server.allow_from``.

A BPJS upstream without its secret would accept every write with 202 and then have
each delivery refused by BPJS; so a missing or empty secret is an error, in
``check-config`` and ``serve`` alike, unless the upstream opts out explicitly with
``unsigned_replays = true``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.config import ServerConfig, UpstreamConfig

Problem = tuple[str, str]


def allow_from_problems(server: ServerConfig) -> Iterator[Problem]:
    for i, entry in enumerate(server.allow_from):
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            yield (f"server.allow_from[{i}]",
                   f"{entry!r} is not an IP address or CIDR network (e.g. \"10.0.0.0/8\")")


def auth_problems(server: ServerConfig,
                  upstreams: Sequence[UpstreamConfig]) -> Iterator[Problem]:
    """What is wrong regardless of the environment."""
    yield from allow_from_problems(server)
    for i, up in enumerate(upstreams):
        key = f"upstreams[{i}]"
        if up.max_skew_s < 0:
            yield f"{key}.max_skew_s", "must be >= 0 (0: no timestamp check)"
        if up.is_bpjs and not up.cons_id:
            yield (f"{key}.cons_id", f"required for preset {up.preset!r}: the consumer id "
                   "BPJS issued (intake checks the SIMRS's X-cons-id against it)")
        if up.unsigned_replays and up.secret_env:
            yield (f"{key}.unsigned_replays", "true, but secret_env is set too: remove "
                   "one (with a secret, replays are re-signed)")


def secret_problems(upstreams: Sequence[UpstreamConfig],
                    env: Mapping[str, str]) -> Iterator[Problem]:
    """A BPJS upstream's secret must be there, unless it opted out of re-signing."""
    for i, up in enumerate(upstreams):
        if not up.is_bpjs or up.unsigned_replays:
            continue
        key = f"upstreams[{i}].secret_env"
        opt_out = (f"(or set upstreams[{i}].unsigned_replays = true to replay without a "
                   "signature, which BPJS refuses once the timestamp is stale)")
        if not up.secret_env:
            yield (key, f"required for preset {up.preset!r}: name the environment variable "
                   f"holding the consumer secret {opt_out}")
        elif not env.get(up.secret_env):
            yield (key, f"the environment variable {up.secret_env} is not set or empty: "
                   f"set it to the consumer secret of cons_id {up.cons_id} {opt_out}")
