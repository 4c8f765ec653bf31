"""The admin UI's one place where domain errors become pages.

A view just calls the service; when the service refuses (``proxy.errors.TenangError``:
no such request, a maintenance window it will not save, a bulk retry of a status that
cannot be retried), this middleware answers with the error's status and an error page:
the message in the user's language where the catalog has one for that kind of error,
and the error's own message (autoescaped like every value, never a traceback) as the
detail. The JSON API on the same app maps the same errors to JSON
(``proxy.ops.admin_api.errors_and_auth``); so do the UI's views polled by scripts
(``guarded(json_api=True)``), which this middleware leaves alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from admin_ui.render import render, translator
from proxy.app_keys import UI_PAGE
from proxy.errors import TenangError
from proxy.ops.bulk import NotRetryable
from proxy.ops.maintenance import MaintenanceError
from proxy.ops.operations import NotFound

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The catalog key of the message shown for each kind of domain error (a subclass counts
# as its nearest listed base); an error without one is shown with its own message.
MESSAGE_KEYS: Mapping[type, str] = {
    NotFound: "error.not_found",
    MaintenanceError: "maintenance.invalid",
    NotRetryable: "bulk.not_retryable",
}


def message_key(error: TenangError) -> str | None:
    for cls in type(error).__mro__:
        key = MESSAGE_KEYS.get(cls)
        if key is not None:
            return key
    return None


def error_page(request: web.Request, status: int, message: str,
               detail: str | None = None) -> web.Response:
    """The error page: ``status``, ``message`` (already in the user's language) and an
    optional ``detail`` line."""
    return render(request, "error.html",
                  {"status": status, "message": message, "detail": detail}, status=status)


def domain_error_page(request: web.Request, error: TenangError) -> web.Response:
    key = message_key(error)
    translated = translator(request).get(key) if key else None
    if translated is None:
        return error_page(request, error.status, str(error))
    return error_page(request, error.status, translated, str(error))


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TenangError as error:
        if not request.get(UI_PAGE, False):
            raise  # the JSON API's (and the polled views') errors are JSON
        return domain_error_page(request, error)
