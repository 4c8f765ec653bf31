"""Pieces of the request-log query every backend shares: id bounds from times, LIKE
patterns, and the same matching rules in Python for backends without SQL."""

from __future__ import annotations

from proxy.lifecycle import OPEN
from proxy.store.records import (
    SEP_ENDPOINT_PREFIX,
    SEP_PATH_PART,
    RequestFilter,
    StoredRequest,
)
from proxy.store.rules import ASCII_LOWER, text_matches

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # as proxy/ids.py (Crockford base32)


def id_at_ms(ms: int) -> str:
    """The smallest request id minted in millisecond ``ms`` (proxy/ids.py layout:
    48 bits of milliseconds, 80 random bits, 26 base32 digits)."""
    value = ms << 80
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def id_floor(ts: float) -> str:
    """Every request received at or after ``ts`` has an id >= this."""
    return id_at_ms(int(ts * 1000))


def id_ceiling(ts: float) -> str:
    """Every request received before ``ts`` has an id < this."""
    return id_at_ms(int(ts * 1000) + 1)


def refuse_unexported_fields(f: RequestFilter) -> None:
    """An export filters by status, upstream and receive time; the log's other filters
    would make it a different export than its manifest says."""
    if f.endpoint is not None or f.text is not None:
        raise ValueError("an export filters by status, upstream and receive time only")


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern using ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(haystack: str, needle: str) -> bool:
    return needle.translate(ASCII_LOWER) in haystack.translate(ASCII_LOWER)


def in_id_range(f: RequestFilter, r: StoredRequest, cursor: str | None) -> bool:
    """The part of a filter an index serves: status, cursor and receive-time bounds."""
    return ((f.status is None or r.status is f.status)
            and (cursor is None or r.id < cursor)
            and (f.received_from is None or r.id >= id_floor(f.received_from))
            and (f.received_to is None or r.id < id_ceiling(f.received_to)))


def matches(f: RequestFilter, r: StoredRequest) -> bool:
    """The row-by-row part of a filter."""
    if f.upstream is not None and r.upstream != f.upstream:
        return False
    if f.endpoint is not None and not _contains_prefix(r.endpoint, f.endpoint):
        return False
    if f.received_from is not None and r.received_at < f.received_from:
        return False
    if f.received_to is not None and r.received_at >= f.received_to:
        return False
    if f.text:
        return text_matches(r, f.text)
    return True


def _contains_prefix(endpoint: str | None, prefix: str) -> bool:
    return endpoint is not None and endpoint.translate(ASCII_LOWER).startswith(
        prefix.translate(ASCII_LOWER))


def is_open_sep(r: StoredRequest) -> bool:
    return r.status in OPEN and (
        _contains_prefix(r.endpoint, SEP_ENDPOINT_PREFIX) or _contains(r.path, SEP_PATH_PART))
