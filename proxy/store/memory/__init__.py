"""The in-memory backend for unit tests: same contract, no durability.

One ``MemoryState`` shared by one object per role.
"""

from __future__ import annotations

from proxy.store.backend import Backend
from proxy.store.in_process import InProcessCoordination, InProcessSendSlots
from proxy.store.local_notices import LocalNotices
from proxy.store.memory.accounts import MemoryAccounts, MemorySessions
from proxy.store.memory.audit import MemoryAudit
from proxy.store.memory.chain import MemoryChain
from proxy.store.memory.intake import MemoryIntake
from proxy.store.memory.log import MemoryLog
from proxy.store.memory.operator import MemoryOperator
from proxy.store.memory.outbox import MemoryOutbox
from proxy.store.memory.queue import MemoryQueue
from proxy.store.memory.retention import MemoryRetention
from proxy.store.memory.schedules import MemorySchedules
from proxy.store.memory.sealing import MemorySealing
from proxy.store.memory.state import MemoryState


def memory_backend(state: MemoryState | None = None, chain: bool = True) -> Backend:
    """Every role on ``state`` (a new, empty one by default); ``chain``: extend the hash
    chain (``[audit] chain``)."""
    s = MemoryState() if state is None else state
    s.chain_on = chain
    return Backend(
        intake=MemoryIntake(s), queue=MemoryQueue(s), log=MemoryLog(s),
        operator=MemoryOperator(s), accounts=MemoryAccounts(s), sessions=MemorySessions(s),
        audit=MemoryAudit(s), outbox=MemoryOutbox(s), schedules=MemorySchedules(s),
        coordination=InProcessCoordination(), send_slots=InProcessSendSlots(),
        retention=MemoryRetention(s), chain=MemoryChain(s), notices=LocalNotices(),
        sealing=MemorySealing(s), engine=s)


__all__ = ["MemoryIntake", "MemoryQueue", "MemoryState", "memory_backend"]
