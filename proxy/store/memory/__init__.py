"""The in-memory backend for unit tests: same contract, no durability."""

from proxy.store.memory.store import MemoryStore

__all__ = ["MemoryStore"]
