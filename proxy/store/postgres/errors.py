"""asyncpg's errors as the StoreError family every backend raises (the PostgreSQL twin of
``sqlite.writer.translate``): callers tell "retry later" from "full" from "duplicate"
without knowing which database is behind the store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from proxy.store.errors import Conflict, DuplicateKey, StoreError, StoreFull, StoreUnavailable

# The partial unique index on requests.dedup_key (schema.sql): the one unique key a
# concurrent resubmission can hit, which intake resolves by looking up the original.
DEDUP_INDEX = "requests_dedup"

# SQLSTATEs after which the same call may work later or on another connection: the
# server went away, is starting or shutting down, is out of connection slots or memory,
# is a standby that a failover left us on (read-only), a statement ran past
# statement_timeout, or a lock could not be had (the SQLite twin: busy/locked).
_UNAVAILABLE = frozenset({
    "57P01", "57P02", "57P03",  # admin shutdown, crash shutdown, cannot connect now
    "53000", "53200", "53300", "53400",  # insufficient resources (not disk), too many clients
    "25006",  # read-only transaction: connected to a standby
    "40001", "40P01",  # serialization failure, deadlock: the transaction was rolled back
    "55P03", "57014",  # lock not available, statement cancelled (statement_timeout)
    "3D000", "28000", "28P01",  # no such database, authentication refused
})
_FULL = frozenset({"53100"})  # disk_full

# Everything a call into asyncpg can raise that is not our own bug: server errors, client
# errors on a closed connection or pool, a protocol left mid-operation by a connection
# the server ended (InternalClientError), socket errors, a connect/command timeout.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError,
    TimeoutError)


def translate(exc: BaseException) -> StoreError:
    """Map a driver error to the domain error whose reason a client may see; the driver's
    own text (which may name tables and values) stays in the message, for the log."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc) or type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.UniqueViolationError):
        if getattr(exc, "constraint_name", None) == DEDUP_INDEX:
            return DuplicateKey(text)
        # Any other key (a user name, a request id) was written by someone else first.
        return Conflict(text)
    if state in _FULL:
        return StoreFull(text)
    if isinstance(state, str) and (state in _UNAVAILABLE or state.startswith("08")):
        return StoreUnavailable(text)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError | OSError
                  | TimeoutError):
        # A closed or broken connection or pool, a refused or reset socket, no answer.
        return StoreUnavailable(text)
    return StoreError(text)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Around every use of a connection or pool: no driver exception escapes."""
    try:
        yield
    except StoreError:
        raise
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc
