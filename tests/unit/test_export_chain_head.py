"""An export's chain head at seq 0 is the empty chain's: it checks out without a store
lookup (a store whose records all predate the chain exports there), and only the genesis
value is accepted there."""

from __future__ import annotations

from proxy.ops.export_manifest import check_chain_head
from proxy.store.chain import GENESIS


def no_store_entry(seq: int) -> bytes | None:
    return None


def test_the_empty_chain_head_verifies_without_an_entry() -> None:
    assert check_chain_head(GENESIS.hex(), 0, no_store_entry) is None
    assert check_chain_head(GENESIS.hex(), 0, None) is None


def test_any_other_head_at_seq_0_is_a_difference() -> None:
    found = check_chain_head("ab" * 32, 0, no_store_entry)
    assert found is not None and "seq 0" in found


def test_a_later_seq_still_needs_the_store() -> None:
    found = check_chain_head("ab" * 32, 5, None)
    assert found is not None and "--config" in found
    assert check_chain_head("ab" * 32, 5, no_store_entry) == (
        "chain_head: the store's chain has no entry seq 5")
