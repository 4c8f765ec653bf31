"""`tenang rekey`'s walk: every stored body, response body and callback payload put
under the current encryption key, plaintext ones included (``Sealing.reseal``).

It walks the requests by id in short batches (one transaction each) and rests between
them as long as a batch took, so a serving Tenang's commits find the write lock free
half the time; a batch that finds the database locked past its busy timeout (SQLite)
is tried again (``patiently``). Stopped and run again, it goes over the store anew and
re-seals only what is not yet under the current key (nothing twice). At the end it
counts what is under
each key id: the previous keys nothing is left under are retired (a start without them
is then allowed), and the run is recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial

from proxy.ops.retention import patiently
from proxy.store.protocols import AuditLog, Sealing

ACTOR = "tenang rekey"
BATCH = 200  # requests per transaction: a few ms of the write lock each
REST_PER_BATCH = 1.0


@dataclass(frozen=True, slots=True)
class RekeyReport:
    requests: int  # requests read
    resealed: int  # values re-encrypted under the current key
    current: str
    counts: Mapping[str | None, int]  # values per key id afterwards (None: plaintext)
    retired: tuple[str, ...]  # previous key ids no value is left under

    @property
    def left_behind(self) -> int:
        """Values not under the current key after the walk (written meanwhile by a
        Tenang still sealing under another key)."""
        return sum(n for key_id, n in self.counts.items() if key_id != self.current)

    def lines(self) -> list[str]:
        out = [f"read {self.requests} requests, re-encrypted {self.resealed} values under "
               f"key id {self.current}"]
        for key_id, n in sorted(self.counts.items(), key=lambda kv: str(kv[0])):
            out.append(f"  {'plaintext' if key_id is None else 'key id ' + key_id}: "
                       f"{n} values")
        if self.retired:
            out.append(f"no value is left under {', '.join(self.retired)}: "
                       "they may now be removed from the keyring")
        if self.left_behind:
            out.append(f"{self.left_behind} values are still not under {self.current}: "
                       "is a Tenang still running with another current key? Restart it "
                       "with the new keyring, then run `tenang rekey` again")
        return out


async def rekey(store: Sealing, audit: AuditLog, current: str, previous: Collection[str],
                *, batch: int = BATCH, clock: Callable[[], float] = time.time,
                progress: Callable[[int, int], None] | None = None) -> RekeyReport:
    """Walk the whole store once (see the module's docstring). ``previous``: the keyring's
    other key ids, retired when nothing is left under them."""
    after: str | None = None
    requests = resealed = 0
    while True:
        started = time.monotonic()
        done = await patiently(partial(store.reseal, after, batch), "a batch", "rekey")
        requests += done.requests
        resealed += done.resealed
        if progress is not None:
            progress(requests, resealed)
        if done.after_id is None:
            break
        after = done.after_id
        await asyncio.sleep((time.monotonic() - started) * REST_PER_BATCH)
    counts = dict(await store.sealed_counts())
    retired = tuple(sorted(k for k in previous if k != current and not counts.get(k)))
    now = clock()
    await patiently(partial(store.retire_keys, retired, now), "retiring keys", "rekey")
    report = RekeyReport(requests, resealed, current, counts, retired)
    await patiently(partial(
        audit.audit, ACTOR, "rekey", None,
        f"re-encrypted {resealed} values under key id {current}"
        + (f"; retired {', '.join(retired)}" if retired else "")
        + (f"; {report.left_behind} not under it" if report.left_behind else ""), now),
        "its audit entry", "rekey")
    return report
