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
from proxy.app_keys import CHAIN_CHECKS, CLOCK, OPS, PRINCIPAL, RETENTION
from proxy.ids import is_request_id
from proxy.ops.audit_chain import ChainStatus
from proxy.store.records import AuditEntry

PAGE_SIZE = 100
MAX_TARGET = 200  # longer than any target the code writes (request ids, user names, ...)
# Every action the code appends (proxy.ops.auth, proxy.ops.operations, proxy.ops.bulk,
# proxy.ops.maintenance, proxy.ops.disclosure, proxy.cli_user, the CSV export, the export
# for auditors): each has an ``audit.action.*`` label. Anything else is shown by its raw name.
ACTIONS = frozenset({
    "login", "login_failed", "login_refused", "logout", "retry", "cancel", "bulk_retry",
    "bulk_retry_done", "bulk_retry_resumed", "maintenance_schedule", "maintenance_cancel",
    "export_csv", "export", "user_add", "user_replace", "user_remove", "view_full",
    "list_full", "search_identifier", "chain_verify", "chain_on", "chain_off",
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
    purged_at: float | None  # the target request was purged by retention then


def _row(e: AuditEntry, t: Translator, purged: dict[str, float]) -> Row:
    target = e.target or ""
    return Row(e.id, e.at, e.actor, e.action,
               t("audit.action." + e.action) if e.action in ACTIONS else e.action,
               # Only request ids link to a detail page: other targets are e.g.
               # ``maintenance:3`` or a user name.
               target, is_request_id(target), e.detail or "", purged.get(target))


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
    chain = await request.app[CHAIN_CHECKS].status()
    entries = await request.app[OPS].audit_log.audit_entries(
        target=target or None, limit=PAGE_SIZE + 1, before_id=before_id)
    page = entries[:PAGE_SIZE]
    t = translator(request)
    # Entries about requests retention purged since: said on the row (their detail page
    # says what is left), one look-up for the page.
    purged = await request.app[RETENTION].purged(
        sorted({e.target for e in page if e.target and is_request_id(e.target)}))
    return render(request, "audit.html", {
        "rows": [_row(e, t, purged) for e in page], "target": target,
        "newest_href": _href(target) if before_id is not None else "",
        "older_href": _href(target, page[-1].id) if len(entries) > PAGE_SIZE else "",
        "chain": _chain_view(chain), "notice": request.query.get("notice", ""),
    })


@dataclass(frozen=True, slots=True)
class ChainView:
    """The hash chain's card: the last verification and the last checkpoint."""

    verified_at: float | None
    ok: bool | None
    head_seq: int | None
    checked: int | None
    broken: str  # the first broken record, as verify names it ("" when none)
    checkpoint_head: str
    checkpoint_seq: int | None
    checkpoint_at: float | None
    running: bool
    off_since: float | None  # the chain is off ([audit] chain = false) since then


def _chain_view(status: ChainStatus) -> ChainView:
    v, c = status.last_verification, status.last_checkpoint
    return ChainView(
        verified_at=v.at if v else None, ok=v.ok if v else None,
        head_seq=v.head_seq if v else None, checked=v.checked if v else None,
        broken=v.broken.describe() if v and v.broken else "",
        checkpoint_head=c.head.hex() if c else "", checkpoint_seq=c.seq if c else None,
        checkpoint_at=c.at if c else None, running=status.running,
        off_since=status.off_since)


async def verify_chain_now(request: web.Request) -> web.StreamResponse:
    """Start a verification of the hash chain in the background (one at a time; a long
    chain takes a while) and come back to the audit page, which shows it running."""
    started = request.app[CHAIN_CHECKS].start()
    if started:
        await request.app[OPS].audit_log.audit(request[PRINCIPAL].name, "chain_verify", None,
                                               None, request.app[CLOCK]())
    raise web.HTTPSeeOther("/audit?notice=" + ("verifying" if started else "running"))
