"""BPJS response encryption (bpjs-reference.md §3.1).

key = SHA-256(cons_id + secret + timestamp), IV = its first 16 bytes, AES-256-CBC with
PKCS#7 padding over an LZ-String ``EncodedURIComponent`` text, Base64 on the wire. The
timestamp is the ``X-timestamp`` of the request that produced the response, so a
re-signed attempt's answer is readable only with that attempt's timestamp.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy.bpjs import lz


class DecryptError(ValueError):
    """The response cannot be decrypted with these credentials and timestamp."""


def _cipher(cons_id: str, secret: str, timestamp: str) -> Cipher[modes.CBC]:
    digest = hashlib.sha256(f"{cons_id}{secret}{timestamp}".encode()).digest()
    return Cipher(algorithms.AES(digest), modes.CBC(digest[:16]))


def encrypt_text(plain: str, cons_id: str, secret: str, timestamp: str) -> str:
    padder = padding.PKCS7(128).padder()
    data = padder.update(lz.compress(plain).encode("ascii")) + padder.finalize()
    enc = _cipher(cons_id, secret, timestamp).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")


def decrypt_text(cipher_b64: str, cons_id: str, secret: str, timestamp: str) -> str:
    try:
        raw = base64.b64decode(cipher_b64, validate=True)
        dec = _cipher(cons_id, secret, timestamp).decryptor()
        padded = dec.update(raw) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        data = unpadder.update(padded) + unpadder.finalize()
        return lz.decompress(data.decode("ascii"))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise DecryptError(f"response does not decrypt with this cons_id/secret/timestamp "
                           f"({exc})") from exc


def encrypt_response(value: Any, cons_id: str, secret: str, timestamp: str) -> str:
    """The wire form of a ``response`` value, as BPJS sends it."""
    return encrypt_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")),
                        cons_id, secret, timestamp)


def decrypt_response(cipher_b64: str, cons_id: str, secret: str, timestamp: str) -> Any:
    """The ``response`` value behind its wire form (JSON when it parses, else text)."""
    text = decrypt_text(cipher_b64, cons_id, secret, timestamp)
    try:
        return json.loads(text)
    except ValueError:
        return text
