"""``server.allow_from``: only clients from these networks may talk to Tenang, on the
SIMRS port and on the admin port alike (issue 11.1). Empty (the default): everyone.

A client outside gets 403 before anything else happens: a BPJS envelope on the SIMRS
port (both spellings: no upstream is matched yet), a JSON error on the admin port. The
networks are parsed once, and each client address is decided once and remembered, so a
request costs one dict lookup; with no list, no middleware is installed at all.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from proxy.intake.answers import envelope

log = logging.getLogger("tenang.allow_from")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_REMEMBERED = 4096
REFUSED = ("Alamat {} tidak diizinkan / client address {} is not allowed "
           "(server.allow_from)")


class AllowList:
    def __init__(self, entries: Sequence[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)
        self._decided: dict[str, bool] = {}

    def allows(self, remote: str | None) -> bool:
        if remote is None:
            return False  # not an IP peer: nothing to match against the list
        allowed = self._decided.get(remote)
        if allowed is None:
            if len(self._decided) >= MAX_REMEMBERED:
                self._decided.clear()
            allowed = self._decided[remote] = self._match(remote)
        return allowed

    def _match(self, remote: str) -> bool:
        try:
            addr = ipaddress.ip_address(remote.split("%", 1)[0])
        except ValueError:
            return False
        # A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)


def _refusal(admin: bool, remote: str | None) -> web.Response:
    message = REFUSED.format(remote, remote)
    if admin:
        return web.json_response({"error": message}, status=403)
    return web.Response(status=403, body=envelope(None, 403, message),
                        content_type="application/json")


def restrict(app: web.Application, allow_from: Sequence[str], *, admin: bool
             ) -> web.Application:
    """Refuse clients outside ``allow_from`` on ``app`` (no-op for an empty list)."""
    if not allow_from:
        return app
    allowed = AllowList(allow_from)

    @web.middleware
    async def allow_from_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        if allowed.allows(request.remote):
            return await handler(request)
        log.info("refused client %s on the %s port (server.allow_from)", request.remote,
                 "admin" if admin else "SIMRS")
        return _refusal(admin, request.remote)

    app.middlewares.insert(0, allow_from_only)
    return app
