"""One BPJS identity for every test SIMRS, and the one signer they share.

Intake checks the SIMRS's own BPJS signature, so every call to the SIMRS port in the
tests carries one. ``make_config`` configures each test upstream with this identity, and
the simulator fixture uses it too, so one header set is valid everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from proxy.bpjs import signature
from proxy.bpjs.simulator.client import DEFAULT_USER_KEY, signed_headers

TEST_CONS_ID = "12345"
TEST_SECRET = "sim-secret-5eCr3t"
TEST_SECRET_ENV = "TENANG_TEST_BPJS_SECRET"


def bpjs_headers(cons_id: str = TEST_CONS_ID, secret: str = TEST_SECRET, *,
                 now: float | None = None, service: str = "antrean", method: str = "POST",
                 user_key: str = DEFAULT_USER_KEY) -> dict[str, str]:
    """What a correct SIMRS sends: X-cons-id, X-timestamp, X-signature, user_key and the
    service's Content-Type (``now`` defaults to the real clock)."""
    return signed_headers(cons_id, secret, service, method=method, user_key=user_key,
                          now=now)


async def sign_unsigned(request: aiohttp.ClientRequest,
                        handler: Callable[[aiohttp.ClientRequest],
                                          Awaitable[aiohttp.ClientResponse]],
                        ) -> aiohttp.ClientResponse:
    """A client middleware: a request without its own X-cons-id gets the test identity's
    signature (a test that sends its own, or a wrong one, keeps it). The Content-Type
    stays the test's own. Result lookups (``/_tenang/``) have their own authentication:
    a signed lookup asks for an encrypted answer, so only tests that want one sign it."""
    if (signature.CONS_ID_HEADER not in request.headers
            and not request.url.path.startswith("/_tenang/")):
        for name, value in bpjs_headers(method=request.method).items():
            if name != "Content-Type":
                request.headers.setdefault(name, value)
    return await handler(request)


def signing_session(**kwargs: object) -> aiohttp.ClientSession:
    """A ClientSession whose requests are signed as the test SIMRS (see sign_unsigned)."""
    return aiohttp.ClientSession(middlewares=(sign_unsigned,), **kwargs)  # type: ignore[arg-type]
