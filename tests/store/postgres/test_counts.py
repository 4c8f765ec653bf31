"""request_counts, kept by the schema's triggers, always equals counting the requests
(per upstream, status and SEP or not), whatever mix of inserts, moves and deletes, from
several connections at once."""

from __future__ import annotations

import asyncio

import asyncpg

from proxy.config import StoreConfig
from proxy.store.postgres.migrations import migrate

INSERT = ("INSERT INTO requests (id, upstream, method, path, query, headers, body, "
          "received_at, status, updated_at, endpoint) "
          "VALUES ($1, $2, 'POST', $3, '', '[]', ''::bytea, 1, 'pending', 1, $4)")

KEPT = ("SELECT upstream, status, sep, sum(n) AS n FROM request_counts "
        "GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3")
COUNTED = ("SELECT upstream, status, tenang_is_sep(endpoint, path) AS sep, count(*) AS n "
           "FROM requests GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")


async def same_counts(conn: asyncpg.Connection) -> list[tuple[str, str, bool, int]]:
    kept = [tuple(r) for r in await conn.fetch(KEPT)]
    counted = [tuple(r) for r in await conn.fetch(COUNTED)]
    assert kept == counted
    return kept


async def test_counts_follow_inserts_moves_and_deletes(pg_conn: asyncpg.Connection) -> None:
    await migrate(pg_conn)
    await pg_conn.executemany(INSERT, [
        ("a1", "antrean", "/antreanrs/antrean/add", "antrean.add"),
        ("a2", "antrean", "/antreanrs/antrean/add", "antrean.add"),
        ("v1", "vclaim", "/vclaim/SEP/2.0/insert", None),
        ("v2", "vclaim", "/vclaim/x", "VCLAIM.SEP.insert"),
        ("v3", "vclaim", "/vclaim/peserta", "vclaim.peserta"),
    ])
    assert await same_counts(pg_conn) == [
        ("antrean", "pending", False, 2), ("vclaim", "pending", False, 1),
        ("vclaim", "pending", True, 2)]

    await pg_conn.execute("UPDATE requests SET status = 'in_flight' WHERE id IN ('a1', 'v1')")
    await pg_conn.execute("UPDATE requests SET attempts = 1")  # no status change
    await pg_conn.execute("UPDATE requests SET status = 'delivered' WHERE id = 'a1'")
    await pg_conn.execute("DELETE FROM requests WHERE id = 'v3'")

    assert await same_counts(pg_conn) == [
        ("antrean", "delivered", False, 1), ("antrean", "pending", False, 1),
        ("vclaim", "in_flight", True, 1), ("vclaim", "pending", True, 1)]


async def test_the_sep_test_folds_ascii_case_only(pg_conn: asyncpg.Connection) -> None:
    await migrate(pg_conn)
    sep = "SELECT tenang_is_sep($1, $2)"
    assert await pg_conn.fetchval(sep, "VClaim.SEP.update", "/x")
    assert await pg_conn.fetchval(sep, None, "/vclaim/Sep/2.0/insert")
    assert not await pg_conn.fetchval(sep, None, "/vclaim/\u017fep/2.0/insert")  # long s, upper: S
    assert not await pg_conn.fetchval(sep, "vclaim.rujukan", "/vclaim/rujukan")


async def test_counts_stay_exact_under_concurrent_writers(pg_config: StoreConfig) -> None:
    conns = [await asyncpg.connect(pg_config.url) for _ in range(4)]
    try:
        await migrate(conns[0])

        async def writer(i: int, conn: asyncpg.Connection) -> None:
            for batch in range(5):
                ids = [f"w{i}-{batch}-{k}" for k in range(20)]
                async with conn.transaction():
                    await conn.executemany(INSERT, [(r, "antrean", "/a", None) for r in ids])
                    await conn.execute("UPDATE requests SET status = 'in_flight' "
                                       "WHERE id = ANY($1::text[])", ids[:10])

        await asyncio.gather(*(writer(i, c) for i, c in enumerate(conns)))

        assert await same_counts(conns[0]) == [
            ("antrean", "in_flight", False, 200), ("antrean", "pending", False, 200)]
    finally:
        for c in conns:
            await c.close()
