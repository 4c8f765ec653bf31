"""The PostgreSQL store (asyncpg): one database shared by several Tenang instances.

Built in steps (issue 13). Until every role is implemented, config selects it for
`tenang migrate` only: `check-config` and `serve` refuse it (``INCOMPLETE``)."""

from __future__ import annotations

# Why `serve` cannot use this backend yet; None once it implements every role.
INCOMPLETE: str | None = ("postgresql store: not yet complete (only the schema and "
                          "`tenang migrate` work in this version; use sqlite:///PATH)")
