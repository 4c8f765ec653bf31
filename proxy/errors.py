"""Domain errors that carry the HTTP status they are answered with.

A service raises what went wrong (no such request, a move the state machine forbids,
a maintenance window it refuses); each app maps ``TenangError`` to an answer in one
place (the admin API: ``admin_api.errors_and_auth``, JSON; the admin UI's pages:
``admin_ui.errors``, an HTML page), so handlers just call the service instead of
translating its exceptions one by one. Imports nothing from Tenang: every
layer may raise these.
"""

from __future__ import annotations


class TenangError(Exception):
    """A refusal with its HTTP status (``status``, per class or per instance); the
    message (``str(exc)``) is what the client is told."""

    status: int = 400
