"""Reading BPJS response envelopes (bpjs-reference.md §4.1).

VClaim and iCare answer ``metaData``, Antrean and Aplicare ``metadata``; ``code`` comes
as a string or a number (and as ``Code`` in some clients' fixtures). Only ``response``
may be encrypted; the envelope itself is always plain JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

META_KEYS = ("metadata", "metaData", "Metadata", "MetaData")


@dataclass(frozen=True, slots=True)
class Envelope:
    key: str  # the spelling the upstream used, kept when the envelope is rewritten
    code: str  # always text: 200, "200" and 1 all arrive here as digits
    message: str
    doc: dict[str, Any]

    @property
    def response(self) -> Any:
        return self.doc.get("response")

    def with_response(self, response: Any) -> Envelope:
        return Envelope(self.key, self.code, self.message, {**self.doc, "response": response})

    def to_bytes(self) -> bytes:
        return json.dumps(self.doc, ensure_ascii=False).encode()


def parse(body: bytes) -> Envelope | None:
    """The envelope in ``body``, or None when it is not one (HTML, empty, other JSON)."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    key = next((k for k in META_KEYS if isinstance(doc.get(k), dict)), None)
    if key is None:
        return None
    meta = doc[key]
    code = meta.get("code", meta.get("Code"))
    if code is None or isinstance(code, bool | dict | list):
        return None
    message = meta.get("message", meta.get("Message", ""))
    return Envelope(key, str(code).strip(), "" if message is None else str(message), doc)
