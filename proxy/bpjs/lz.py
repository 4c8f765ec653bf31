"""LZ-String ``EncodedURIComponent`` as the JavaScript original computes it.

The ``lzstring`` package works on Python code points, while lz-string.js works on UTF-16
code units; they agree on the Basic Multilingual Plane only. Converting to and from
UTF-16 units makes emoji and other astral characters come out as BPJS (and its JS and
Java clients) produce them. Verified against vectors from lz-string.js 1.5.0
(tests/unit/test_bpjs_crypto.py).
"""

from __future__ import annotations

import lzstring

_LZ = lzstring.LZString()


class LZError(ValueError):
    """The text is not valid LZ-String EncodedURIComponent data."""


def _to_utf16_units(text: str) -> str:
    data = text.encode("utf-16-le", "surrogatepass")
    return "".join(chr(int.from_bytes(data[i:i + 2], "little")) for i in range(0, len(data), 2))


def _from_utf16_units(units: str) -> str:
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def compress(text: str) -> str:
    units = text if text.isascii() else _to_utf16_units(text)
    result: str = _LZ.compressToEncodedURIComponent(units)
    return result


def decompress(data: str) -> str:
    try:
        units = _LZ.decompressFromEncodedURIComponent(data)
        if units is None:
            raise LZError("not LZ-String data")
        return _from_utf16_units(units)
    except (KeyError, IndexError, TypeError, ValueError, UnicodeError) as exc:
        raise LZError(f"not LZ-String data: {type(exc).__name__}") from exc
