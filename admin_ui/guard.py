"""Who may see and do what in the UI: session check, role check, CSRF check, and the
security headers every admin-port response carries.

Each UI route is wrapped by ``guarded`` with the permission it needs, instead of a
path-based middleware, so other routes on the admin port (/metrics, /healthz, the JSON
API) keep their own rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from admin_ui import errors
from admin_ui.render import translator
from proxy.app_keys import AUTH, PRINCIPAL, UI_PAGE
from proxy.ops.auth import SESSION_COOKIE, Permission
from proxy.tokens import same

View = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSRF_FIELD = "csrf_token"
# default-src 'self' covers scripts, styles, images and fetches: no inline script or
# style can run, whatever a stored body contains. The rest closes what default-src
# does not (framing, <base>, form targets).
CSP = ("default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
       "object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response of the admin app, errors and static included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        # Pages show patient data: keep them out of shared browser caches.
        response.headers.setdefault("Cache-Control", "no-store")


def safe_next(target: str | None) -> str:
    """A local path to return to after login; anything else (other hosts, ``//x``,
    backslash tricks) becomes the dashboard. Control characters and spaces are refused
    outright: the redirect drops tabs and newlines, so ``/\t/evil.example`` would leave
    as ``//evil.example``."""
    if not target or not target.startswith("/") or target.startswith("//") or \
            any(c == "\\" or c.isspace() or not c.isprintable() for c in target):
        return "/"
    return target


Form = MultiDictProxy[str | bytes | bytearray | FileField]


async def posted_form(request: web.Request) -> Form | None:
    """The posted form, or None when a field is not text in its declared charset (a
    multipart field of invalid UTF-8, say): the caller answers 400 instead of a 500."""
    try:
        return await request.post()
    except (UnicodeDecodeError, LookupError):  # LookupError: an unknown charset name
        return None


def login_redirect(request: web.Request) -> web.HTTPException:
    return web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe=""))


def error_page(request: web.Request, status: int, message_key: str) -> web.Response:
    """The error page with the catalog's message ``message_key``."""
    return errors.error_page(request, status, translator(request)(message_key))


def guarded(permission: Permission, view: View, *, json_api: bool = False) -> View:
    """``view`` for logged-in users holding ``permission``. Without a session: a
    redirect to the login page (401 for ``json_api`` views polled by scripts). A
    state-changing request must also carry the session's CSRF token (403)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        request[UI_PAGE] = not json_api
        who = await request.app[AUTH].principal(request.cookies.get(SESSION_COOKIE))
        if who is None:
            if json_api:
                return web.json_response({"error": "not logged in"}, status=401)
            raise login_redirect(request)
        request[PRINCIPAL] = who
        if request.method not in ("GET", "HEAD"):
            form = await posted_form(request)
            if form is None:
                return error_page(request, 400, "error.bad_form")
            token = form.get(CSRF_FIELD)
            if not isinstance(token, str) or not same(token, who.csrf_token):
                return error_page(request, 403, "error.csrf")
        if not who.can(permission):
            return error_page(request, 403, "error.forbidden")
        return await view(request)

    return handler
