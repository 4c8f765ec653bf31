"""Login, logout and the language switch.

The login form has no session yet to tie a CSRF token to, so it uses a double-submit
token: a random value both in an HttpOnly cookie and in the form, which must match.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from admin_ui.fmt import wib
from admin_ui.guard import CSRF_FIELD, error_page, posted_form, safe_next
from admin_ui.i18n import LANG_COOKIE, LANGS
from admin_ui.render import render, translator
from proxy.app_keys import AUTH, PRINCIPAL, SETTINGS
from proxy.ops.auth import SESSION_COOKIE, LoginRefused
from proxy.tokens import same

LOGIN_CSRF_COOKIE = "tenang_login_csrf"
YEAR_S = 365 * 86_400


def _login_page(request: web.Request, *, error: str = "", status: int = 200,
                next_path: str = "/", name: str = "") -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {
        "error": error, "next": next_path, "name": name, "login_csrf": token,
    }, status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict",
                        secure=request.app[SETTINGS].cookie_secure, path="/login")
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    who = await request.app[AUTH].principal(request.cookies.get(SESSION_COOKIE))
    next_path = safe_next(request.query.get("next"))
    if who is not None:
        raise web.HTTPSeeOther(next_path)
    return _login_page(request, next_path=next_path)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await posted_form(request)
    if form is None:
        return error_page(request, 400, "error.bad_form")
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not same(token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return error_page(request, 403, "error.csrf")
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "/")))
    try:
        session_token, who = await request.app[AUTH].login(name, password)
    except LoginRefused as exc:
        t = translator(request)
        error = (t("login.locked", until=wib(exc.locked_until, seconds=False))
                 if exc.locked_until else t("login.wrong"))
        return _login_page(request, error=error, status=401, next_path=next_path, name=name)
    settings = request.app[SETTINGS]
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(SESSION_COOKIE, session_token, httponly=True, samesite="Strict",
                        secure=settings.cookie_secure, path="/",
                        max_age=int(settings.session_ttl_s))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    request[PRINCIPAL] = who
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await request.app[AUTH].logout(request[PRINCIPAL])
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def set_lang(request: web.Request) -> web.StreamResponse:
    """Only a display preference, not a change of server state: a plain GET link."""
    lang = request.match_info["lang"]
    if lang not in LANGS:
        raise web.HTTPNotFound()
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    response.set_cookie(LANG_COOKIE, lang, max_age=YEAR_S, samesite="Lax", path="/",
                        secure=request.app[SETTINGS].cookie_secure)
    raise response
