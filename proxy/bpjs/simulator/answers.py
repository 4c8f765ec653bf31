"""What a service handler answers, and the service's envelope around it (reference §4.1).

Handlers return an ``Answer`` (code, message, response, whether BPJS encrypts it, the log
outcome); ``render`` turns it into the body that service really sends: VClaim
``metaData`` with a string code, Antrean/Aplicare ``metadata`` with a number, iCare
``metaData`` with a number, ``response: null`` when empty. Encrypted responses use the
caller's ``X-cons-id``, the configured secret and the caller's ``X-timestamp`` (§3.1),
so a caller that signed with another timestamp cannot read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from aiohttp import web

from proxy.bpjs.crypto import encrypt_response

Service = Literal["vclaim", "antrean", "aplicare", "icare"]
SERVICES: tuple[str, ...] = get_args(Service)


@dataclass(frozen=True)
class Caller:
    """Who signed the request: what the answer's encryption key is derived from."""

    cons_id: str
    timestamp: str


@dataclass(frozen=True)
class Answer:
    code: int
    message: str
    response: Any = None
    encrypt: bool = False
    outcome: str = "ok"
    http_status: int = 200
    extra_meta: Mapping[str, Any] = field(default_factory=dict)


def ok(response: Any = None, *, message: str = "OK", code: int = 200,
       encrypt: bool = False, **extra_meta: Any) -> Answer:
    return Answer(code, message, response, encrypt, "ok", 200, extra_meta)


def refuse(code: int, message: str, outcome: str = "rejected") -> Answer:
    """A business answer that applied nothing; carried in HTTP 200 like BPJS does."""
    return Answer(code, message, None, False, outcome)


def envelope(service: Service, answer: Answer, caller: Caller | None,
             secret: str) -> dict[str, Any]:
    response = answer.response
    if answer.encrypt and response is not None and caller is not None:
        response = encrypt_response(response, caller.cons_id, secret, caller.timestamp)
    code: int | str = str(answer.code) if service == "vclaim" else answer.code
    meta = {"code": code, "message": answer.message, **answer.extra_meta}
    key = "metadata" if service in ("antrean", "aplicare") else "metaData"
    return {key: meta, "response": response}


def render(service: Service, answer: Answer, caller: Caller | None,
           secret: str) -> web.Response:
    body = json.dumps(envelope(service, answer, caller, secret), ensure_ascii=False)
    return web.Response(status=answer.http_status, text=body, content_type="application/json")
