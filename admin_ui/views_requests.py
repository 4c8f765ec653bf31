"""Request log (filters, keyset pages, CSV export), the detail page, retry and cancel."""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass

from aiohttp import web

from admin_ui.filters import FilterForm, page_size, parse, upstream_names
from admin_ui.fmt import body_text, wib_iso
from admin_ui.i18n import Translator
from admin_ui.labels import preset_endpoint_names
from admin_ui.render import render, translator
from admin_ui.row_keys import RowKeys, page_keys, request_keys
from proxy.app_keys import CLOCK, FULL_VIEWS, OPS, PRINCIPAL, RETENTION
from proxy.lifecycle import CANCELLABLE, OPERATOR_RETRYABLE, InvalidTransition, Status
from proxy.observe.redact import masked_headers
from proxy.ops.auth import Permission
from proxy.ops.bulk import describe
from proxy.ops.disclosure import (
    VIEW_ACTIONS,
    audited_search,
    disclosure_for,
    shown_detail,
    shown_page,
)
from proxy.ops.export import spreadsheet_cell
from proxy.ops.operations import NotFound
from proxy.ops.request_log import Query, every_page, list_page
from proxy.store.errors import Conflict
from proxy.store.records import AuditEntry, StoredAttempt, StoredRequest

EXPORT_MAX = 100_000
# The search keys as columns (no card number column: the body has it in full, and the
# export is for auditors); the body stays last.
CSV_COLUMNS = ("id", "received_at_wib", "upstream", "endpoint", "method", "path", "query",
               "status", "attempts", "reason", "kodebooking", "taskid", "nosep", "body")
ENDPOINT_CHOICES = sorted(preset_endpoint_names() - {"read", "write"})
# Notices a redirect may ask the detail page to show (never free text from the URL).
NOTICES = frozenset({"retried", "cancelled", "invalid", "conflict"})


def _form(request: web.Request) -> FilterForm:
    return parse(request.query, upstream_names(request))


async def request_log(request: web.Request) -> web.Response:
    form = _form(request)
    limit = page_size(request.query.get("limit"))
    cursor = request.query.get("cursor") or None
    log = request.app[OPS].log
    page = await list_page(log, Query(form.filter, limit, cursor))
    who = request[PRINCIPAL]
    rows = await shown_page(request.app[OPS].audit_log, who, page.items, via="ui log",
                            at=request.app[CLOCK](), seen=request.app[FULL_VIEWS],
                            text=form.filter.text)
    return render(request, "requests.html", {
        "form": form, "page": page, "rows": rows, "cursor": cursor, "limit": limit,
        "keys": await page_keys(log, rows), "endpoints": ENDPOINT_CHOICES,
        "statuses": list(Status), "upstreams": upstream_names(request),
        "can_export": who.can(Permission.EXPORT), "can_operate": who.can(Permission.OPERATE),
    })


def _csv_row(r: StoredRequest, k: RowKeys) -> str:
    out = io.StringIO()
    # Every cell quoted: a spreadsheet that splits on ';' (the Indonesian locale) must not
    # start a new, unprefixed cell in the middle of a body.
    csv.writer(out, quoting=csv.QUOTE_ALL).writerow([spreadsheet_cell(v) for v in (
        r.id, wib_iso(r.received_at), r.upstream, r.endpoint, r.method, r.path, r.query,
        r.status.value, r.attempts, r.reason, k.booking, k.task, k.sep,
        r.body.decode("utf-8", "replace"))])
    return out.getvalue()


async def request_csv(request: web.Request) -> web.StreamResponse:
    """The filtered log as CSV, newest first, at most EXPORT_MAX rows; audited (the
    export's own entry: its pages are not audited one by one, but a masked role's
    search by an identifier is, page by page, as on the log)."""
    form = _form(request)
    ops = request.app[OPS]
    who = request[PRINCIPAL]
    shown = disclosure_for(who)
    await ops.audit_log.audit(who.name, "export_csv", None, describe(form.filter),
                              request.app[CLOCK]())
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="tenang-requests.csv"'})
    await response.prepare(request)
    await response.write(",".join(CSV_COLUMNS).encode() + b"\r\n")
    async for page in every_page(ops.log, form.filter, max_rows=EXPORT_MAX):
        await audited_search(ops.audit_log, who, form.filter.text, via="csv export",
                             at=request.app[CLOCK](), seen=request.app[FULL_VIEWS],
                             ids=[r.id for r in page.items])
        rows = [shown.request(r) for r in page.items]
        keys = await page_keys(ops.log, rows)
        await response.write("".join(_csv_row(r, keys[r.id]) for r in rows)
                             .encode("utf-8", "replace"))
    await response.write_eof()
    return response


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    what: str
    who: str
    detail: str


def _history(r: StoredRequest, attempts: list[StoredAttempt], audit: list[AuditEntry],
             t: Translator) -> list[Event]:
    """The state history: receipt, every attempt, every operator action, and now."""
    events = [Event(r.received_at, t("history.received"), "SIMRS", "")]
    for a in attempts:
        detail = " · ".join(x for x in (f"HTTP {a.http_status}" if a.http_status else "",
                                        a.error or "") if x)
        events.append(Event(a.started_at, t("history.attempt", n=a.number,
                                             verdict=t("verdict." + a.verdict.value)),
                            "relay", detail))
    for e in audit:
        if e.action in VIEW_ACTIONS:  # who looked is in the audit trail, not the history
            continue
        events.append(Event(e.at, t("action." + e.action), e.actor, e.detail or ""))
    events.sort(key=lambda e: e.at)
    events.append(Event(r.updated_at, t("history.now", status=t("status." + r.status.value)),
                        "", r.reason or ""))
    return events


async def request_detail(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    who = request[PRINCIPAL]
    try:
        r = await ops.get(request.match_info["id"])
    except NotFound:  # a purged row says so; else admin_ui.errors answers 404
        return await _purged_row(request, request.match_info["id"])
    r, attempts = await shown_detail(ops.audit_log, who, r, await ops.log.attempts(r.id),
                                     via="ui detail", at=request.app[CLOCK]())
    shown = disclosure_for(who)
    audit = [dataclasses.replace(e, detail=e.detail and shown.text(e.detail))
             for e in await ops.audit_log.audit_entries(target=r.id, limit=500)]
    notice = request.query.get("notice", "")
    return render(request, "detail.html", {
        "r": r, "keys": request_keys(r, attempts), "headers": masked_headers(r.headers),
        "body": body_text(r.body),
        "attempts": [(a, body_text(a.response_body)) for a in attempts],
        "history": _history(r, attempts, audit, translator(request)),
        # Without its body a request cannot be sent again (the API answers 409).
        "can_retry": who.can(Permission.OPERATE) and r.status in OPERATOR_RETRYABLE
        and r.purged_at is None,
        "can_cancel": who.can(Permission.OPERATE) and r.status in CANCELLABLE,
        "notice": notice if notice in NOTICES else "",
    })


async def _purged_row(request: web.Request, request_id: str) -> web.Response:
    """A request whose row retention deleted: gone (410), when, and that its hash stays
    in the chain. Raises NotFound for an id the chain holds no tombstone of."""
    purged = await request.app[RETENTION].purged([request_id])
    if request_id not in purged:
        raise NotFound(request_id)
    return render(request, "purged.html", {
        "request_id": request_id, "purged_at": purged[request_id],
        "audit_link": request[PRINCIPAL].can(Permission.EXPORT)}, status=410)


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    ops, who = request.app[OPS], request[PRINCIPAL]
    request_id = request.match_info["id"]
    notice = "retried" if action == "retry" else "cancelled"
    try:
        if action == "retry":
            await ops.retry(request_id, who.name)
        else:
            await ops.cancel(request_id, who.name)
    except InvalidTransition:  # a stale page: back to the request as it is now, with why
        notice = "invalid"
    except Conflict:
        notice = "conflict"
    raise web.HTTPSeeOther(f"/requests/{request_id}?notice={notice}")


async def retry(request: web.Request) -> web.StreamResponse:
    return await _act(request, "retry")


async def cancel(request: web.Request) -> web.StreamResponse:
    return await _act(request, "cancel")
