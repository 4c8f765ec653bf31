"""Notices (which instance sends an admin notification): one contract for every backend.
One claim per condition, upstream and window; one all-clear per claimed notice."""

from __future__ import annotations

import asyncio

from proxy.store.backend import Backend
from tests.store.test_contract import T0


async def test_one_claim_per_condition_and_window(store: Backend) -> None:
    notices = store.notices
    assert await notices.claim_notice("breaker", "vclaim", T0, 600)
    assert not await notices.claim_notice("breaker", "vclaim", T0 + 599, 600)
    assert await notices.claim_notice("breaker", "antrean", T0 + 1, 600)  # another upstream
    assert await notices.claim_notice("backlog", "vclaim", T0 + 1, 600)  # another condition
    assert await notices.claim_notice("breaker", "vclaim", T0 + 600, 600)


async def test_one_all_clear_per_claimed_notice(store: Backend) -> None:
    notices = store.notices
    assert not await notices.claim_all_clear("breaker", "vclaim")  # nothing claimed
    assert await notices.claim_notice("breaker", "vclaim", T0, 600)
    assert await notices.claim_all_clear("breaker", "vclaim")
    assert not await notices.claim_all_clear("breaker", "vclaim")


async def test_racing_claims_have_one_winner(store: Backend) -> None:
    won = await asyncio.gather(*(store.notices.claim_notice("dead", "vclaim", T0 + n / 10,
                                                            600) for n in range(8)))
    assert won.count(True) == 1
