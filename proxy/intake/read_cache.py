"""Last good answers to passthrough reads of reference data, kept in plain text so they
can be re-encrypted for whoever asks while BPJS cannot answer."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from proxy.bpjs import crypto
from proxy.bpjs import envelope as bpjs_envelope

MAX_ENTRIES = 2_000


@dataclass(frozen=True, slots=True)
class Cached:
    envelope: bpjs_envelope.Envelope  # response in plain text
    encrypted: bool
    stored_at: float


class ReadCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, ...], Cached] = OrderedDict()
        self.max_entries = max_entries

    def put(self, key: tuple[str, ...], entry: Cached) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: tuple[str, ...], ttl_s: float, now: float) -> Cached | None:
        entry = self._entries.get(key)
        if entry is None or now - entry.stored_at > ttl_s:
            return None
        return entry


def for_caller(entry: Cached, cons_id: str, secret: str | None, timestamp: str) -> bytes | None:
    """The cached envelope as BPJS would answer this caller (None: cannot encrypt)."""
    if not entry.encrypted or entry.envelope.response is None:
        return entry.envelope.to_bytes()
    if not secret or not timestamp:
        return None
    wire: Any = crypto.encrypt_response(entry.envelope.response, cons_id, secret, timestamp)
    return entry.envelope.with_response(wire).to_bytes()
