"""Templates: one jinja2 environment with autoescaping on for everything it renders.

Stored requests are untrusted input (a SIMRS may send anything, and so may whoever can
reach the SIMRS), so nothing is ever marked safe: templates print values, jinja escapes.
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from admin_ui.fmt import wib
from admin_ui.i18n import LANG_COOKIE, Translator
from admin_ui.labels import endpoint_label
from proxy.app_keys import JINJA_ENV, PRINCIPAL, SETTINGS


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("admin_ui", "templates"),
        autoescape=True,  # for .svg as much as .html
        undefined=jinja2.StrictUndefined,  # a typo in a template fails its test, not silently
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["wib"] = wib
    env.globals["endpoint_label"] = endpoint_label
    return env


def translator(request: web.Request) -> Translator:
    return Translator(request.cookies.get(LANG_COOKIE, ""))


def render(request: web.Request, template: str, context: dict[str, Any], *,
           status: int = 200, content_type: str = "text/html") -> web.Response:
    """Render ``template`` with the common context: translator, language, who is logged
    in and their CSRF token, and the request path (for the language switch)."""
    t = translator(request)
    who = request.get(PRINCIPAL)
    common = {"t": t, "lang": t.lang, "who": who, "csrf": who.csrf_token if who else "",
              "here": request.path_qs, "refresh_s": request.app[SETTINGS].ui_refresh_s}
    text = request.app[JINJA_ENV].get_template(template).render({**common, **context})
    # A stored body may hold a lone surrogate ("\ud800": valid JSON, not UTF-8): it is
    # shown as "?" rather than failing the page.
    return web.Response(body=text.encode("utf-8", "replace"), status=status,
                        content_type=content_type, charset="utf-8")
