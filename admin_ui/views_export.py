"""The export for auditors in the browser: the form (``GET /export``) and the download
(``POST /export``), the same export ``tenang export`` writes.

The download is one zip holding the export and its manifest (``NAME.jsonl`` or
``NAME.csv`` and ``NAME.….manifest.json``): the manifest's hash and counts are known only
once the last row is written, and a second download would be a second export (maybe of
rows that changed meanwhile). One file keeps the evidence and its proof together, and
after unzipping ``tenang audit verify --export NAME.jsonl`` checks it as it checks a
command-line export. Streamed in chunks of a page: constant memory, however many rows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator, Mapping
from datetime import datetime

from aiohttp import web

from admin_ui.filters import upstream_names
from admin_ui.guard import posted_form
from admin_ui.render import render
from proxy.app_keys import CLOCK, EXPORT_PAGES, OPS, PRINCIPAL
from proxy.bpjs.service_day import WIB
from proxy.lifecycle import Status
from proxy.ops.export import ExportFilter, Format, zipped_export
from proxy.ops.request_log import BadParameter, read_day, read_status

FIELDS = ("since", "until", "format", "upstream", "status")


def _defaults(now: float) -> dict[str, str]:
    today = datetime.fromtimestamp(now, WIB).strftime("%d/%m/%Y")
    return {"since": today, "until": today, "format": Format.JSONL.value, "upstream": "",
            "status": ""}


def _page(request: web.Request, values: Mapping[str, str], errors: list[str],
          status: int = 200) -> web.Response:
    return render(request, "export.html", {
        "values": values, "errors": errors, "formats": list(Format),
        "statuses": list(Status), "upstreams": upstream_names(request)}, status=status)


async def export_form(request: web.Request) -> web.Response:
    return _page(request, _defaults(request.app[CLOCK]()), [])


def read_export_filter(values: Mapping[str, str], upstreams: list[str]
                       ) -> tuple[ExportFilter, Format]:
    """The export a posted form asks for; BadParameter naming the field otherwise."""
    since, until = read_day("since", values["since"]), read_day("until", values["until"])
    if since is None or until is None:
        raise BadParameter("since" if since is None else "until", "a day is required")
    if until < since:
        raise BadParameter("until", "is a day before since")
    if values["format"] not in {f.value for f in Format}:
        raise BadParameter("format", "must be jsonl or csv")
    upstream = values["upstream"] or None
    if upstream is not None and upstream not in upstreams:
        raise BadParameter("upstream", "is not a configured upstream")
    return ExportFilter(since, until, upstream, read_status(values["status"])), \
        Format(values["format"])


def _name(f: ExportFilter, fmt: Format) -> str:
    parts = ["tenang-export", f.since.isoformat(), f.until.isoformat()]
    parts += [p for p in (f.upstream, None if f.status is None else f.status.value) if p]
    return "_".join(parts) + "." + fmt.value


async def _next(chunks: Generator[bytes, None, None]) -> bytes | None:
    # Each page is read and encoded in a worker thread: the loop keeps serving.
    return await asyncio.to_thread(next, chunks, None)


async def export_download(request: web.Request) -> web.StreamResponse:
    form = await posted_form(request)  # guarded() has read (and checked) it already
    values = {k: str(form.get(k, "") if form is not None else "").strip() for k in FIELDS}
    try:
        filters, fmt = read_export_filter(values, upstream_names(request))
    except BadParameter as exc:
        return _page(request, values, [f"export.bad.{exc.parameter}"], status=400)
    now, who = request.app[CLOCK](), request[PRINCIPAL]
    name = _name(filters, fmt)
    chunks = zipped_export(request.app[EXPORT_PAGES](filters.request_filter()), fmt, name,
                           filters, now)
    try:
        # The first page is read before anything is sent: a store that cannot be read
        # becomes an error page, not a broken download.
        first = await _next(chunks)
        await request.app[OPS].audit_log.audit(who.name, "export", None, json.dumps(
            {"format": fmt.value, **filters.as_json()}, ensure_ascii=False), now)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{name}.zip"'})
        await response.prepare(request)
        chunk = first
        while chunk is not None:
            if chunk:
                await response.write(chunk)
            chunk = await _next(chunks)
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(chunks.close)
