"""Turning an upstream answer into the plain result ops and auditors can read.

An encrypted ``response`` is decrypted with the timestamp of the attempt that produced
it (the only key that opens it) and stored in place of the ciphertext.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.bpjs import crypto
from proxy.bpjs import envelope as bpjs_envelope


@dataclass(frozen=True, slots=True)
class Readable:
    body: bytes
    decrypt_error: str | None = None


def readable(body: bytes, *, encrypted: bool, cons_id: str, secret: str | None,
             timestamp: str | None) -> Readable:
    """``body`` with its encrypted ``response`` replaced by the plain value."""
    if not encrypted:
        return Readable(body)
    env = bpjs_envelope.parse(body)
    if env is None or not isinstance(env.response, str) or not env.response:
        return Readable(body)
    if not secret or timestamp is None:
        return Readable(body, "response is encrypted but no secret is configured to read it")
    try:
        plain = crypto.decrypt_response(env.response, cons_id, secret, timestamp)
    except crypto.DecryptError as exc:
        return Readable(body, str(exc))
    return Readable(env.with_response(plain).to_bytes())
