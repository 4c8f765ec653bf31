"""Encryption at rest of what can hold patient data (issue 14, scope 3): request bodies,
attempts' response bodies (BPJS's answers) and callback payloads (which carry the
result). Pure: no I/O; every backend seals on write and opens on read with one
``Keyring``, so nothing above the store ever sees a sealed value.

The keyring is the value of the environment variable ``[store] encryption_key_env``
names, a comma-separated list of ``ID:KEY``: the first is the current key (every new
value is sealed under it), the others previous keys still able to open older values
(rotation: ``tenang rekey``). ``KEY`` is 32 random bytes in standard base64
(``openssl rand -base64 32``), ``ID`` 1 to 32 of ``A-Z a-z 0-9 . _ -``, e.g.
``TENANG_KEY=2026b:Q2h...=,2026a:dGVu...=``.

A sealed value is ``nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16)``,
its key id in the row's ``key_id`` column (NULL: stored in plaintext, before encryption
was turned on). The associated data binds it to its row and field (``body_aad``,
``response_aad``, ``payload_aad``): a sealed body copied onto another request, or into
another column, no longer opens. An empty stored value is what retention leaves of a
purged body, whatever its key id: a sealed value is never shorter than 28 bytes.

The hash chain (``proxy.store.chain``) hashes the plaintext: re-sealing under a new key
changes no leaf, so ``tenang audit verify`` stays green across a rekey, and a changed
ciphertext (it no longer opens) is reported as a changed record.

Each store records the key ids it has sealed under (``KeyRecord``), with a check value
sealed under each: ``Keyring.check`` refuses to start with a key that is not the one an
id was first used with (a wrong key fails loudly instead of sealing new rows under a key
the old ones do not open with), or without a key some rows still need.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from proxy.store.errors import StoreError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_CHECK = b"tenang key check"


class KeyringError(ValueError):
    """The keyring's text is malformed; the message says how (never the key)."""


class SealingError(StoreError):
    """A sealed value cannot be opened with the keyring Tenang was started with (its key
    is missing or wrong): a configuration problem, said in one line."""

    reason = "stored data is encrypted under a key this Tenang does not hold"


class SealBroken(StoreError):
    """A sealed value did not authenticate under its own key: it was changed (or moved
    to another row) after it was written."""

    reason = "stored data failed its integrity check"


def body_aad(request_id: str) -> bytes:
    return b"requests.body\x00" + request_id.encode()


def response_aad(request_id: str, number: int) -> bytes:
    return b"attempts.response_body\x00" + f"{request_id}/{number}".encode()


def payload_aad(request_id: str) -> bytes:
    return b"callbacks.payload\x00" + request_id.encode()


def _check_aad(key_id: str) -> bytes:
    return b"sealing_keys.check\x00" + key_id.encode()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key id a store has sealed under: its check value, and when ``tenang rekey``
    found no value left under it (None: values may still need it)."""

    key_id: str
    check: bytes
    retired_at: float | None = None


def parse(text: str) -> list[tuple[str, bytes]]:
    """``ID:KEY,ID:KEY...`` as (id, 32-byte key) pairs, current first."""
    out: list[tuple[str, bytes]] = []
    for n, part in enumerate((p.strip() for p in text.split(",")), start=1):
        key_id, sep, encoded = part.partition(":")
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise KeyringError(f"key {n}: expected ID:BASE64KEY with ID of 1-32 letters, "
                               "digits, '.', '_' or '-'")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"key {n} ({key_id}): not standard base64") from None
        if len(key) != KEY_SIZE:
            raise KeyringError(f"key {n} ({key_id}): {len(key)} bytes, expected {KEY_SIZE} "
                               "(make one with: openssl rand -base64 32)")
        if any(key_id == seen for seen, _ in out):
            raise KeyringError(f"key {n}: id {key_id} appears twice")
        out.append((key_id, key))
    return out


class Keyring:
    """The keys values are sealed and opened with; empty: encryption off (values are
    stored as they are, and only plaintext rows open)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]] = (), source: str = "") -> None:
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        self.current: str | None = keys[0][0] if keys else None
        self._aead = None if self.current is None else self._keys[self.current]
        self._source = source or "the keyring"  # named in errors: the variable

    @classmethod
    def from_text(cls, text: str | None, source: str = "") -> Keyring:
        return cls(parse(text) if text else (), source)

    @property
    def enabled(self) -> bool:
        return self.current is not None

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def seal(self, value: bytes, aad: bytes) -> bytes:
        """``value`` sealed under the current key (as it is when encryption is off)."""
        if self._aead is None:
            return value
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, value, aad)

    def open(self, stored: bytes, key_id: str | None, aad: bytes) -> bytes:
        """The plaintext of ``stored``, sealed under ``key_id`` (None: plaintext)."""
        if key_id is None or not stored:
            return stored
        aead = self._keys.get(key_id)
        if aead is None:
            raise SealingError(f"a stored value is encrypted under key id {key_id!r}, "
                               f"which {self._source} does not hold (add it as a previous "
                               "key)")
        try:
            return aead.decrypt(stored[:NONCE_SIZE], stored[NONCE_SIZE:], aad)
        except InvalidTag:
            raise SealBroken(f"a value encrypted under key id {key_id!r} failed its "
                             "integrity check (changed after it was written)") from None

    def resealed(self, stored: bytes, key_id: str | None, aad: bytes) -> bytes | None:
        """``stored`` sealed under the current key (a rekey walk's step), or None when it
        already is or is empty (purged): nothing to write."""
        if key_id == self.current or not stored:
            return None
        return self.seal(self.open(stored, key_id, aad), aad)

    def check_record(self) -> KeyRecord | None:
        """The record a store keeps of the current key (None when encryption is off)."""
        if self.current is None:
            return None
        return KeyRecord(self.current, self.seal(_CHECK, _check_aad(self.current)))

    def check(self, records: Iterable[KeyRecord]) -> None:
        """Raise SealingError unless this keyring fits a store that has sealed under
        ``records``: every key it holds under a known id is that id's key, and every id
        with values possibly left (not retired) is held."""
        for record in records:
            aead = self._keys.get(record.key_id)
            if aead is None:
                if record.retired_at is None:
                    raise SealingError(
                        f"this store holds values encrypted under key id "
                        f"{record.key_id!r}, which {self._source} does not hold: add it as "
                        "a previous key (ID:KEY after the current one) until `tenang rekey` "
                        "has re-encrypted them")
                continue
            try:
                if aead.decrypt(record.check[:NONCE_SIZE], record.check[NONCE_SIZE:],
                                _check_aad(record.key_id)) == _CHECK:
                    continue
            except InvalidTag:
                pass
            raise SealingError(f"key id {record.key_id!r} in {self._source} is not the key "
                               "this store was encrypted with under that id (wrong key?)")


R = TypeVar("R")
T = TypeVar("T")


def opened(rows: Iterable[R], decode: Callable[[R], T], ref: Callable[[R], str],
           broken: set[str]) -> Iterator[T]:
    """``rows`` decoded (their sealed values opened), for a chain check: a row whose
    value no longer opens (``SealBroken``) is left out and its ``ref`` added to
    ``broken``, whose entries then get ``BROKEN_LEAF``."""
    for row in rows:
        try:
            yield decode(row)
        except SealBroken:
            broken.add(ref(row))


PLAINTEXT = Keyring(source="this Tenang's config (no [store] encryption_key_env)")
# The leaf a chain check gives a record whose sealed value no longer opens: no SHA-256
# is empty, so the walk reports it as changed.
BROKEN_LEAF = b""
