"""BPJS-shaped JSON answers Tenang gives the SIMRS itself (queued, refused, failed).

Every answer keeps the service's own envelope (ARCHITECTURE.md §5): ``metaData`` with a
string code for VClaim, ``metadata`` with a numeric code for Antrean/Aplicare, number
for iCare; always ``code``, ``message`` and ``response: null``.
"""

from __future__ import annotations

import json
from typing import Any

QUEUED_MESSAGE = (
    "Diterima dan diantrekan oleh Tenang; akan dikirim ke BPJS. "
    "/ Accepted and queued by Tenang; it will be delivered to BPJS."
)


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


def queued(preset: str) -> bytes:
    return envelope(preset, 202, QUEUED_MESSAGE)


# What BPJS itself answers a successful write whose answer carries no data (ack "bpjs-ok").
_BPJS_OK = {"antrean": (200, "Ok."), "aplicare": (1, "OK"), "vclaim": (200, "Sukses"),
            "icare": (200, "OK"), "generic": (200, "OK")}


def bpjs_ok(preset: str) -> bytes:
    code, message = _BPJS_OK[preset]
    return envelope(preset, code, message)


def already_accepted(preset: str, request_id: str, status: str) -> bytes:
    return envelope(preset, 202, f"Sudah diterima sebelumnya sebagai {request_id} (status "
                    f"{status}); tidak dikirim dua kali. / Already accepted as {request_id} "
                    f"(status {status}); not delivered twice.")
