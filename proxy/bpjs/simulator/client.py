"""Helpers for a test SIMRS talking to the simulator (or to Tenang in front of it):
correctly signed headers with the Content-Type each service's clients send, and the
decryption of an answer's ``response``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from proxy.bpjs import signature
from proxy.bpjs.crypto import decrypt_response

DEFAULT_USER_KEY = "sim-user-key-0001"


def content_type(service: str, method: str = "GET") -> str:
    """VClaim writes are labelled as a form though the body is JSON (reference §2.1)."""
    if service == "vclaim":
        return ("application/json; charset=utf-8" if method.upper() == "GET"
                else "Application/x-www-form-urlencoded")
    return "application/json"


def signed_headers(cons_id: str, secret: str, service: str = "antrean", *,
                   method: str = "GET", user_key: str = DEFAULT_USER_KEY,
                   now: float | None = None) -> dict[str, str]:
    """``X-cons-id``, ``X-timestamp``, ``X-signature``, ``user_key`` and Content-Type."""
    headers = signature.signed_headers(cons_id, secret, time.time() if now is None else now)
    headers[signature.USER_KEY_HEADER] = user_key
    headers["Content-Type"] = content_type(service, method)
    return headers


def decrypt(answer: Mapping[str, Any], cons_id: str, secret: str,
            headers: Mapping[str, str]) -> Any:
    """The plain ``response`` of an answer to a request sent with ``headers``."""
    return decrypt_response(answer["response"], cons_id, secret,
                            headers[signature.TIMESTAMP_HEADER])
