"""Reading what an admin client sends: one JSON-body parser for every admin JSON route,
whole numbers (ids, page sizes) with range checks, and text that can be stored.

Whatever a client sends gets a 4xx naming the problem, never a 500: JSON nested past
the parser's stack, bytes that are not UTF-8, an unpaired surrogate (``"\\ud800"``,
which no store can encode), or an id with more digits than a database integer holds.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from aiohttp import web

from proxy.errors import TenangError

# SQLite's (and PostgreSQL's bigint) largest integer: a bigger id names nothing.
MAX_STORED_ID = 2**63 - 1
# Admin bodies are a handful of fields; anything near this is not one.
MAX_JSON_BODY = 64 * 1024


class ApiError(TenangError):
    """A refusal of what the admin client sent, with the status to answer it with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def whole_number(raw: str, lo: int = 1, hi: int = MAX_STORED_ID) -> int | None:
    """``raw`` as an int in ``lo..hi``, or None. Only ASCII digits count: ``str.isdigit``
    also accepts "²", which ``int`` then refuses."""
    if not raw or len(raw) > 19 or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None


def storable(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (an unpaired surrogate does not)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def json_object(request: web.Request, fields: Collection[str]) -> dict[str, Any]:
    """The body as a JSON object with only ``fields``; its string values storable text.
    ApiError(400/413) otherwise, naming what is wrong."""
    raw = await request.read()
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(413, f"body larger than {MAX_JSON_BODY} bytes")
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "body is JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise ApiError(400, "body is not UTF-8 text") from None
    except ValueError as exc:
        raise ApiError(400, f"body must be a JSON object ({exc})") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "body must be a JSON object")
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (known: {', '.join(fields)})")
    for key, value in doc.items():
        if isinstance(value, str) and not storable(value):
            raise ApiError(400, f"{key}: not valid text (an unpaired UTF-16 surrogate)")
    return doc
