"""What may be shown of stored requests: credentials masked, secrets never present.

Intake stores only the headers an upstream gets (proxy/intake/headers.py), but rows stored
before that, and headers an operator adds with ``forward_headers``, may hold anything:
every view (admin API, UI detail page) masks a header whose name looks like a
credential, not only the ones Tenang knows.
"""

from __future__ import annotations

import re

from proxy.store.records import Headers

# user_key, X-Api-Key, Authorization, Cookie, X-Auth-Token, X-Session-Id, X-Signature,
# X-Password, X-Credentials, ...
_CREDENTIAL = re.compile(r"key|token|secret|auth|cookie|session|sign|pass|cred",
                         re.IGNORECASE)
# Identifiers that merely look like one: an Idempotency-Key names a request.
_NOT_CREDENTIALS = frozenset({"idempotency-key"})


def mask(value: str) -> str:
    """Keep a short prefix so ops can tell keys apart; hide the rest."""
    return value[:4] + "…" if len(value) > 8 else "…"


def is_credential(name: str) -> bool:
    return name.lower() not in _NOT_CREDENTIALS and _CREDENTIAL.search(name) is not None


def masked_headers(headers: Headers) -> list[tuple[str, str]]:
    return [(k, mask(v) if is_credential(k) else v) for k, v in headers]
