"""The PostgreSQL store (asyncpg): one database shared by several Tenang instances.

``backend.postgres_backend`` fills every role (the contract suite runs on it). Config
still refuses it (``INCOMPLETE``: `check-config`, `serve` and `tenang user` say why;
`tenang migrate` works): what several instances must share besides the queue is not
shared yet (issue 13)."""

from __future__ import annotations

# Why `serve` cannot use this backend yet; None once instances can share everything.
INCOMPLETE: str | None = (
    "postgresql store: not yet complete (its queue and breakers are shared, but send rates, "
    "backpressure and notifications are not yet shared between instances; "
    "use sqlite:///PATH)")
