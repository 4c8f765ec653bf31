"""The PostgreSQL store (asyncpg): one database shared by several Tenang instances.

``backend.postgres_backend`` fills every role (the contract suite runs on it). Config
still refuses it (``INCOMPLETE``: `check-config`, `serve` and `tenang user` say why;
`tenang migrate` works): what several instances must share besides the queue is not
shared yet: the send rates (issue 13)."""

from __future__ import annotations

import os

# Why `serve` cannot use this backend yet; None once instances can share everything.
# Only tests/integration/test_pg_instances.py sets TENANG_TEST_ALLOW_INCOMPLETE_PG: its
# instances share the queue, which works, and nothing of what is still per instance.
INCOMPLETE: str | None = None if os.environ.get("TENANG_TEST_ALLOW_INCOMPLETE_PG") == "1" else (
    "postgresql store: not yet complete (its queue, breakers, send rates, backpressure, "
    "notifications and bulk jobs are shared, but max_concurrency is not yet shared between "
    "instances; "
    "use sqlite:///PATH)")
