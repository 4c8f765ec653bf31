"""What may be shown of stored requests: user_key masked, secrets never present."""

from __future__ import annotations

from proxy.store.base import Headers

MASKED_HEADERS = frozenset({"user_key", "x-user-key", "authorization"})


def mask(value: str) -> str:
    """Keep a short prefix so ops can tell keys apart; hide the rest."""
    return value[:4] + "…" if len(value) > 8 else "…"


def masked_headers(headers: Headers) -> list[tuple[str, str]]:
    return [(k, mask(v) if k.lower() in MASKED_HEADERS else v) for k, v in headers]
