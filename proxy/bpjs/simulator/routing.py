"""Route tables: case-insensitive path templates per service, and the call a handler gets.

BPJS clients differ in path casing (``SEP`` / ``sep``, ``Peserta`` / ``peserta``), so
templates match case-insensitively; ``{name}`` captures one path segment. A trailing
slash is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.bpjs.simulator.answers import Answer
from proxy.bpjs.simulator.records import Records
from proxy.bpjs.simulator.settings import Settings, SimConfig


@dataclass(frozen=True)
class Call:
    """One authenticated request, as a service handler sees it."""

    method: str
    subpath: str
    params: dict[str, str]
    body: Any                    # parsed JSON, else the text, else None
    now: float                   # simulator clock, epoch seconds
    records: Records
    config: SimConfig
    settings: Settings

    def json_object(self) -> dict[str, Any]:
        """The body when it is a JSON object, else an empty one (handlers then refuse)."""
        return self.body if isinstance(self.body, dict) else {}


Handler = Callable[[Call], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    template: str


_PARAM = re.compile(r"\{(\w+)\}")


def route(method: str, template: str, handler: Handler) -> Route:
    parts = _PARAM.split(template)
    # split() alternates literal text and parameter names
    regex = "".join(f"(?P<{p}>[^/]+)" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return Route(method.upper(), re.compile(regex, re.IGNORECASE), handler, template)


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


def find(routes: Sequence[Route], method: str, subpath: str) -> Match | str:
    """The matching route, or ``"not-found"`` / ``"method-not-allowed"``."""
    path = subpath.strip("/")
    path_matched = False
    for r in routes:
        m = r.pattern.fullmatch(path)
        if m is None:
            continue
        path_matched = True
        if r.method == method.upper():
            return Match(r, m.groupdict())
    return "method-not-allowed" if path_matched else "not-found"
