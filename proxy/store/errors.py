"""The errors a store raises: no driver exception escapes a backend, only these.

``reason`` is safe to show a client (it names no path, query or driver detail).
"""

from __future__ import annotations


class StoreError(Exception):
    """The store could not do what was asked; ``reason`` is safe to show a client."""

    reason = "store unavailable"


class StoreUnavailable(StoreError):
    reason = "store unavailable (database locked or closed)"


class StoreLocked(StoreUnavailable):
    """Another process held the database's write lock past the busy timeout (SQLite):
    nothing was written, and trying again once it lets go may well succeed."""


class StoreFull(StoreError):
    reason = "store full (no space left on the disk holding the queue)"


class DuplicateKey(StoreError):
    """Another request already holds this dedup key (a concurrent resubmission)."""

    reason = "a request with this dedup key already exists"


class Conflict(StoreError):
    """The row was not in the state the caller expected (someone else moved it)."""

    reason = "request changed state concurrently"
