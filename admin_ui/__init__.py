"""Admin web UI: dashboard, request log, detail pages and operator actions, served on the
admin port beside the JSON API. A client of ``proxy.ops.operations``, ``proxy.ops.auth`` and the
store verbs; it holds no SQL and no state-machine logic of its own."""

from admin_ui.routes import setup_ui

__all__ = ["setup_ui"]
