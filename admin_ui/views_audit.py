"""The audit trail: every entry of the audit log, newest first, keyset-paginated by id,
optionally for one target (exact match)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from admin_ui.guard import error_page
from admin_ui.i18n import Translator
from admin_ui.render import render, translator
from proxy.app_keys import OPS
from proxy.ids import is_request_id
from proxy.store.records import AuditEntry

PAGE_SIZE = 100
MAX_TARGET = 200  # longer than any target the code writes (request ids, user names, ...)
# Every action the code appends (proxy.ops.auth, proxy.ops.operations, proxy.ops.bulk,
# proxy.ops.maintenance, proxy.cli_user, the CSV export, the export for auditors): each
# has an ``audit.action.*`` label. Anything else is shown by its raw name.
ACTIONS = frozenset({
    "login", "login_failed", "login_refused", "logout", "retry", "cancel", "bulk_retry",
    "bulk_retry_done", "bulk_retry_resumed", "maintenance_schedule", "maintenance_cancel",
    "export_csv", "export", "user_add", "user_replace", "user_remove", "view_full",
    "list_full",
})
_POSITIVE = re.compile(r"[1-9][0-9]{0,17}")  # an SQLite integer, never 0 or negative


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    at: float
    actor: str
    action: str
    label: str
    target: str
    request_link: bool
    detail: str


def _row(e: AuditEntry, t: Translator) -> Row:
    target = e.target or ""
    return Row(e.id, e.at, e.actor, e.action,
               t("audit.action." + e.action) if e.action in ACTIONS else e.action,
               # Only request ids link to a detail page: other targets are e.g.
               # ``maintenance:3`` or a user name.
               target, is_request_id(target), e.detail or "")


def _href(target: str, before_id: int | None = None) -> str:
    query = {"target": target} if target else {}
    if before_id is not None:
        query["before_id"] = str(before_id)
    return "/audit" + ("?" + urlencode(query) if query else "")


async def audit_log(request: web.Request) -> web.Response:
    target = request.query.get("target", "")
    if len(target) > MAX_TARGET:
        return error_page(request, 400, "audit.bad_target")
    raw_before = request.query.get("before_id", "")
    before_id: int | None = None
    if raw_before:
        if _POSITIVE.fullmatch(raw_before) is None:
            return error_page(request, 400, "audit.bad_before_id")
        before_id = int(raw_before)
    entries = await request.app[OPS].audit_log.audit_entries(
        target=target or None, limit=PAGE_SIZE + 1, before_id=before_id)
    page = entries[:PAGE_SIZE]
    t = translator(request)
    return render(request, "audit.html", {
        "rows": [_row(e, t) for e in page], "target": target,
        "newest_href": _href(target) if before_id is not None else "",
        "older_href": _href(target, page[-1].id) if len(entries) > PAGE_SIZE else "",
    })
