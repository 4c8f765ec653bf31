"""The keys staff search by, for the rows of one request-log page: booking code, task id,
card number and SEP number, read from the rows as the viewer may see them (the card
number is masked for roles that see identifiers masked: ``proxy.ops.disclosure``).

Only the rows on the page are read (a page is at most ``filters.PAGE_SIZES[-1]`` rows),
so the cost does not grow with the log. Bodies are untrusted: values are plain strings
(the template escapes them), cut to ``MAX_SHOWN`` characters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from proxy.bpjs.keys import UnkeyableBody, parse_json, scalar
from proxy.lifecycle import Status, Verdict
from proxy.store.protocols import RequestLog
from proxy.store.records import StoredAttempt, StoredRequest

BOOKING_FIELDS = ("kodebooking",)
TASK_FIELDS = ("taskid",)
CARD_FIELDS = ("nomorkartu", "noKartu")  # Antrean, VClaim
SEP_FIELDS = ("noSep",)
# Endpoints whose successful answer names the SEP it created (``response.sep.noSep``).
SEP_RESULT_ENDPOINTS = frozenset({"vclaim.sep.insert"})
MAX_SHOWN = 40


@dataclass(frozen=True, slots=True)
class RowKeys:
    booking: str = ""
    task: str = ""
    card: str = ""
    sep: str = ""


def _first(doc: Any, fields: Sequence[str]) -> str:
    for name in fields:
        value = scalar(doc, name)
        if value:
            # A lone surrogate ("\ud800") parses but cannot be sent as UTF-8.
            return value.encode("utf-8", "replace").decode("utf-8")
    return ""


def _parsed(raw: bytes) -> Any:
    try:
        return parse_json(raw)
    except UnkeyableBody:  # nested too deeply: nothing to show
        return None


def result_sep(attempts: Sequence[StoredAttempt]) -> str:
    """``noSep`` in the newest successful answer (stored decrypted), or ``""``."""
    for a in reversed(attempts):
        if a.verdict is not Verdict.SUCCESS or not a.response_body:
            continue
        doc = _parsed(a.response_body)
        response = doc.get("response") if isinstance(doc, dict) else None
        if not isinstance(response, dict):
            return ""
        return (_first(response, SEP_FIELDS) or _first(response.get("sep"), SEP_FIELDS)
                )[:MAX_SHOWN]
    return ""


def body_keys(body: bytes) -> RowKeys:
    doc = _parsed(body)
    return RowKeys(booking=_first(doc, BOOKING_FIELDS)[:MAX_SHOWN],
                   task=_first(doc, TASK_FIELDS)[:MAX_SHOWN],
                   card=_first(doc, CARD_FIELDS)[-MAX_SHOWN:],  # its last digits count
                   sep=_first(doc, SEP_FIELDS)[:MAX_SHOWN])


def request_keys(r: StoredRequest, attempts: Sequence[StoredAttempt]) -> RowKeys:
    """One request's keys, its attempts already read (the detail page)."""
    keys = body_keys(r.body)
    if _wants_result(r, keys):
        keys = replace(keys, sep=result_sep(attempts))
    return keys


def _wants_result(r: StoredRequest, keys: RowKeys) -> bool:
    return (not keys.sep and r.status is Status.SUCCEEDED
            and r.endpoint in SEP_RESULT_ENDPOINTS)


async def page_keys(log: RequestLog, rows: Sequence[StoredRequest]) -> dict[str, RowKeys]:
    """Request id -> its keys, for ``rows``; one attempts read per succeeded SEP insert."""
    keys = {r.id: body_keys(r.body) for r in rows}
    want = [r for r in rows if _wants_result(r, keys[r.id])]
    found = await asyncio.gather(*(log.attempts(r.id) for r in want))
    for r, attempts in zip(want, found, strict=True):
        sep = result_sep(attempts)
        if sep:
            keys[r.id] = replace(keys[r.id], sep=sep)
    return keys
