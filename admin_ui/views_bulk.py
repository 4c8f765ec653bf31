"""Bulk retry: a dry-run count for the request log's current filter, the confirm form,
and the progress of a started job (polled by live.js)."""

from __future__ import annotations

from aiohttp import web

from admin_ui.filters import filter_words, parse, upstream_names
from admin_ui.fmt import wib
from admin_ui.guard import error_page
from admin_ui.render import render, translator
from proxy.app_keys import BULK, CLOCK, FULL_VIEWS, OPS, PRINCIPAL
from proxy.ops.admin_input import whole_number
from proxy.ops.bulk import BulkJob, NotRetryable, describe
from proxy.ops.disclosure import audited_search, disclosure_for


async def preview(request: web.Request) -> web.Response:
    form = parse(request.query, upstream_names(request))
    if form.errors:  # never count (or offer) a wider retry than the one asked for
        return render(request, "bulk_preview.html", {"form": form, "count": None},
                      status=400)
    try:
        count = await request.app[BULK].dry_run(form.filter)
    except NotRetryable:
        return render(request, "bulk_preview.html", {"form": form, "count": None},
                      status=400)
    # The count searched the stored requests: by an identifier, an audited lookup.
    await audited_search(request.app[OPS].audit_log, request[PRINCIPAL], form.filter.text,
                         via="bulk dry run", at=request.app[CLOCK](),
                         seen=request.app[FULL_VIEWS], count=count)
    return render(request, "bulk_preview.html", {"form": form, "count": count})


async def start(request: web.Request) -> web.StreamResponse:
    post = await request.post()
    form = parse({k: str(v) for k, v in post.items()}, upstream_names(request))
    expected = whole_number(str(post.get("expected", "")), 0)
    if form.errors or expected is None:
        return error_page(request, 400, "bulk.bad_form")
    # NotRetryable (a filter naming, say, succeeded) becomes admin_ui.errors' page.
    job = await request.app[BULK].start(form.filter, request[PRINCIPAL].name, expected)
    raise web.HTTPSeeOther(f"/bulk/{job.id}")


async def _job(request: web.Request) -> BulkJob | None:
    return await request.app[BULK].get(int(request.match_info["job_id"]))


def _fields(job: BulkJob, request: web.Request) -> dict[str, str]:
    t = translator(request)
    record = job.record
    state = ("bulk.state.failed" if record.error else
             "bulk.state.running" if job.running else "bulk.state.done")
    return {"retried": str(record.retried), "skipped": str(record.skipped), "state": t(state),
            "finished_at": wib(record.finished_at) or t("none")}


async def job_page(request: web.Request) -> web.Response:
    job = await _job(request)
    if job is None:
        return error_page(request, 404, "error.not_found")
    # Another user's search text may be a NIK or card number.
    shown = disclosure_for(request[PRINCIPAL])
    return render(request, "bulk_job.html", {
        "job": job, "fields": _fields(job, request),
        "filter_text": shown.text(describe(job.filter)),
        "filter_words": [(label, shown.text(value)) for label, value in
                         filter_words(job.filter, translator(request))]})


async def job_json(request: web.Request) -> web.Response:
    job = await _job(request)
    if job is None:
        return web.json_response({"error": "no such job"}, status=404)
    return web.json_response({"fields": _fields(job, request), "states": {
        "job": "running" if job.running else "done"}, "stop": not job.running})
