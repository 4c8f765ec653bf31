"""BPJS-shaped JSON answers Tenang gives the SIMRS itself (queued, refused, failed).

Every answer keeps the service's own envelope (ARCHITECTURE.md §5): ``metaData`` with a
string code for VClaim, ``metadata`` with a numeric code for Antrean/Aplicare, number
for iCare; always ``code``, ``message`` and ``response: null``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The request's id ends the message: PHP and Python BPJS clients hand the SIMRS only the
# decoded body, and the id is how it later fetches BPJS's answer (the noSep of a SEP
# insert) from GET /_tenang/requests/{id}.
QUEUED_MESSAGE = "Diterima Tenang, menunggu BPJS / queued: id {id}"
_ID_MARK = "{id}"


def envelope(preset: str | None, code: int, message: str) -> bytes:
    """The answer body; ``preset`` None (no upstream matched) carries both spellings."""
    doc: dict[str, Any]
    if preset is None:
        doc = {"metaData": {"code": str(code), "message": message},
               "metadata": {"code": code, "message": message}}
    elif preset == "vclaim":
        doc = {"metaData": {"code": str(code), "message": message}}
    elif preset == "icare":
        doc = {"metaData": {"code": code, "message": message}}
    else:
        doc = {"metadata": {"code": code, "message": message}}
    doc["response"] = None
    return json.dumps(doc, ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class WithId:
    """An answer serialised once, with the request id spliced in per request (ids are
    ASCII and need no JSON escaping): intake answers thousands a second."""

    head: bytes
    tail: bytes

    @classmethod
    def of(cls, body: bytes) -> WithId:
        head, tail = body.split(_ID_MARK.encode(), 1)
        return cls(head, tail)

    def render(self, request_id: str) -> bytes:
        return self.head + request_id.encode("ascii") + self.tail


def queued(preset: str) -> WithId:
    return WithId.of(envelope(preset, 202, QUEUED_MESSAGE))


# What BPJS itself answers a successful write whose answer carries no data (ack "bpjs-ok").
_BPJS_OK = {"antrean": (200, "Ok."), "aplicare": (1, "OK"), "vclaim": (200, "Sukses"),
            "icare": (200, "OK"), "generic": (200, "OK")}


def bpjs_ok(preset: str) -> bytes:
    code, message = _BPJS_OK[preset]
    return envelope(preset, code, message)


def already_accepted(preset: str, request_id: str, status: str) -> bytes:
    """A resubmission's answer: the original's id ends the message, as in ``queued``."""
    return envelope(preset, 202, f"Sudah diterima sebelumnya (status {status}); tidak "
                    f"dikirim dua kali / Already accepted (status {status}), not delivered "
                    f"twice: id {request_id}")
