"""Encryption at rest on the backends that keep data at rest (SQLite, PostgreSQL), each
store reopened with another keyring the way an operator restarts Tenang: what is in the
columns (raw bytes, read past the store), a store that was plaintext before, rotation with
the rekey walk (``proxy.ops.rekey``), and the keyrings a store refuses at open."""

from __future__ import annotations

import base64
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from proxy.config import StoreConfig
from proxy.lifecycle import Status, Transition, Verdict
from proxy.ops.rekey import rekey
from proxy.store.backend import Backend
from proxy.store.errors import StoreError
from proxy.store.postgres.backend import postgres_backend
from proxy.store.records import NewCallback
from proxy.store.sealing import PLAINTEXT, Keyring, SealBroken, SealingError
from proxy.store.sqlite import sqlite_backend
from tests.pg_support import fresh_schema
from tests.store.test_contract import T0, UP, attempt, req
from tests.store_support import enqueue

NIK = b"3201012345678901"
CARD = b"0001234567890"


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def ring(*pairs: tuple[str, int]) -> Keyring:
    return Keyring.from_text(",".join(f"{kid}:{key(n)}" for kid, n in pairs), "TEST_KEYS")


@dataclass
class Place:
    """One store on disk or in a schema, opened as often as a test likes."""

    kind: str
    open_with: Callable[[Keyring], Backend]
    raw: Callable[[str], Awaitable[list[tuple[Any, ...]]]]  # SQL past the store


@pytest.fixture(params=["sqlite", "postgres"])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Place]:
    if request.param == "sqlite":
        path = tmp_path / "tenang.db"

        async def raw_sqlite(sql: str) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(path)
            try:
                with conn:
                    return conn.execute(sql).fetchall()
            finally:
                conn.close()

        yield Place("sqlite", lambda keys: sqlite_backend(path, keys=keys), raw_sqlite)
        return
    async with fresh_schema() as url:
        async def raw_pg(sql: str) -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(url)
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        config = StoreConfig(url=url, pool_min=1, pool_max=4)
        yield Place("postgres", lambda keys: postgres_backend(config, keys), raw_pg)


async def opened(place: Place, keys: Keyring) -> Backend:
    backend = place.open_with(keys)
    await backend.open()
    return backend


async def history(backend: Backend, i: int) -> str:
    """A request with a NIK and a card number, delivered, its answer and callback kept."""
    r = req(i, body=b'{"nik": "' + NIK + b'", "nomorkartu": "' + CARD + b'", "i": %d}' % i)
    await enqueue(backend.intake, r)
    claimed = await backend.queue.claim_due(UP, T0 + 100, 10, "w", T0 + 200)
    assert r.id in [c.id for c in claimed]
    answer = b'{"response": {"noKartu": "' + CARD + b'"}, "metadata": {"code": 200}}'
    await backend.queue.complete_attempt(
        r.id, "w", attempt(1, T0 + 100, Verdict.SUCCESS, http_status=200, error=None,
                           response_body=answer),
        Transition(Status.SUCCEEDED, "ok"), T0 + 101,
        NewCallback("http://simrs.test/cb", b'{"result": "' + CARD + b'"}'))
    return r.id


async def readable(backend: Backend, request_id: str) -> None:
    got = await backend.log.get(request_id)
    assert got is not None and NIK in got.body
    attempts = await backend.intake.attempts(request_id)
    assert attempts[0].response_body is not None and CARD in attempts[0].response_body


async def sealed_columns(place: Place) -> list[tuple[Any, ...]]:
    """Every sealed column's (key id, value) as stored."""
    return [*await place.raw("SELECT key_id, body FROM requests"),
            *await place.raw("SELECT key_id, response_body FROM attempts"),
            *await place.raw("SELECT key_id, payload FROM callbacks")]


async def test_sealed_columns_hold_no_plaintext_and_read_back_whole(place: Place) -> None:
    backend = await opened(place, ring(("k1", 1)))
    try:
        ids = [await history(backend, i) for i in (1, 2)]
        for request_id in ids:
            await readable(backend, request_id)
        claimed = await backend.outbox.claim_callbacks(T0 + 200, 10, T0 + 300)
        assert [CARD in c.payload for c in claimed] == [True, True]
    finally:
        await backend.close()

    columns = await sealed_columns(place)
    assert len(columns) == 6 and {k for k, _ in columns} == {"k1"}
    for _, value in columns:
        assert NIK not in bytes(value) and CARD not in bytes(value)
        assert b"nik" not in bytes(value) and b"metadata" not in bytes(value)


async def test_a_plaintext_store_turned_encrypted_then_rotated_stays_readable(
        place: Place) -> None:
    backend = await opened(place, PLAINTEXT)
    try:
        before = [await history(backend, 1)]
    finally:
        await backend.close()
    assert {k for k, _ in await sealed_columns(place)} == {None}

    backend = await opened(place, ring(("k1", 1)))  # encryption turned on
    try:
        await readable(backend, before[0])  # a mixed store: old rows are plaintext
        before.append(await history(backend, 2))
        assert dict(await backend.sealing.sealed_counts()) == {None: 3, "k1": 3}
        report = await rekey(backend.sealing, backend.audit, "k1", [])
        assert (report.requests, report.resealed, report.left_behind) == (2, 3, 0)
        assert dict(report.counts) == {"k1": 6}
    finally:
        await backend.close()

    backend = await opened(place, ring(("k2", 2), ("k1", 1)))  # rotation: k2 first
    try:
        before.append(await history(backend, 3))
        again = await rekey(backend.sealing, backend.audit, "k2", ["k1"], batch=2)
        assert (again.requests, again.resealed, again.retired) == (3, 6, ("k1",))
        assert dict(again.counts) == {"k2": 9}
        assert (await rekey(backend.sealing, backend.audit, "k2", ["k1"])).resealed == 0
        entries = await backend.audit.audit_entries()
        assert [e.action for e in entries][:3] == ["rekey"] * 3
        assert entries[1].detail == "re-encrypted 6 values under key id k2; retired k1"
    finally:
        await backend.close()
    assert {k for k, _ in await sealed_columns(place)} == {"k2"}

    backend = await opened(place, ring(("k2", 2)))  # the old key gone
    try:
        for request_id in before:
            await readable(backend, request_id)
    finally:
        await backend.close()


async def test_a_keyring_that_does_not_fit_the_store_is_refused_at_open(
        place: Place) -> None:
    backend = await opened(place, ring(("k1", 1)))
    try:
        await history(backend, 1)
    finally:
        await backend.close()

    refused = {
        "without its key": (ring(("k2", 2)), "key id 'k1'"),
        "encryption off": (PLAINTEXT, "key id 'k1'"),
        "another key under its id": (ring(("k1", 7)), "not the key"),
    }
    for keys, words in refused.values():
        backend = place.open_with(keys)
        with pytest.raises(SealingError, match=words):
            await backend.open()
        await backend.close()


async def test_a_sealed_value_moved_to_another_row_does_not_open(place: Place) -> None:
    backend = await opened(place, ring(("k1", 1)))
    try:
        first, second = await history(backend, 1), await history(backend, 2)
    finally:
        await backend.close()
    (body,), = await place.raw(f"SELECT body FROM requests WHERE id = '{first}'")
    hexed = bytes(body).hex()  # the first request's sealed body, onto the second
    await place.raw(f"UPDATE requests SET body = X'{hexed}' WHERE id = '{second}'"
                    if place.kind == "sqlite" else
                    f"UPDATE requests SET body = '\\x{hexed}'::bytea WHERE id = '{second}'")

    backend = await opened(place, ring(("k1", 1)))
    try:
        await readable(backend, first)
        with pytest.raises(SealBroken, match="integrity check") as broken:
            await backend.log.get(second)
        assert isinstance(broken.value, StoreError)  # the admin side's error mapper knows it
    finally:
        await backend.close()


async def test_a_store_encrypted_after_the_fact_keeps_no_old_body_in_its_files(
        tmp_path: Path) -> None:
    """SQLite moves a row that grows: the walk zeroes the cells the plaintext was in
    (``secure_delete``, whatever the build's default) and truncates the WAL (PostgreSQL
    keeps old row versions until VACUUM FULL: README)."""
    path = tmp_path / "tenang.db"
    nik = b"32" + secrets.token_hex(7).encode()
    backend = sqlite_backend(path)
    await backend.open()
    try:
        # About a kilobyte each, as Antrean bodies are: a few to a page.
        stored = [req(i, body=b'{"nik": "' + nik + b'"}' + b" " * (900 + i))
                  for i in range(1, 30)]
        for r in stored:
            await enqueue(backend.intake, r)
    finally:
        await backend.close()
    assert nik in path.read_bytes()

    backend = sqlite_backend(path, keys=ring(("k1", 1)))
    await backend.open()
    try:
        assert (await rekey(backend.sealing, backend.audit, "k1", [], batch=7)).resealed == 29
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        assert [nik in p.read_bytes() for p in files] == [False] * len(files)
        for r in stored:
            got = await backend.log.get(r.id)
            assert got is not None and got.body == r.body
    finally:
        await backend.close()
    assert nik not in path.read_bytes()
