"""Everything one simulator instance knows: settings, BPJS records, the request log and
the queued faults. Tests may build one, hand it to ``create_simulator_app`` and read it
directly; the control API reads and changes the same object.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypedDict

from aiohttp import web

from proxy.bpjs.simulator.faults import Fault, parse_fault
from proxy.bpjs.simulator.records import Records
from proxy.bpjs.simulator.settings import Settings, SimConfig

Clock = Callable[[], float]


class LogEntry(TypedDict):
    """One request the simulator received (``GET /_sim/log``)."""

    seq: int
    time: float                  # simulator clock when it arrived
    method: str
    path: str
    query: str
    target: str                  # the request-target as sent on the wire (raw path + query)
    service: str | None          # vclaim | antrean | aplicare | icare; None: unknown prefix
    headers: dict[str, str]
    body: Any                    # parsed JSON, else text, else None
    outcome: str                 # "pending" until answered; see app.py for the vocabulary
    status: int | None           # HTTP status sent; None when dropped or still pending
    code: int | None             # envelope code sent, when it was a JSON answer
    answer: str | None           # "json", "html-503", "reset", "timeout", ...
    fault: str | None            # the one-shot fault action that fired, if any
    applied: bool                # did the request change BPJS state (or read it)?


class SimulatorState:
    """Mutable simulator state. Not thread-safe: use it from the simulator's event loop."""

    def __init__(self, config: SimConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self.settings = Settings.from_config(config)
        self.rng = random.Random(config.seed)
        self.records = Records()
        self.log: list[LogEntry] = []
        self.faults: list[Fault] = []
        self._seq = itertools.count(1)
        self._fault_ids = itertools.count(1)
        self._stopping = asyncio.Event()
        # BPJS requests being answered now, and the most at once since start or reset:
        # what a client's concurrency limit looks like from BPJS's side.
        self.answering = 0
        self.most_answering = 0

    def reset(self) -> None:
        """Forget records, log and faults; restore start-up settings and the RNG seed."""
        self.settings = Settings.from_config(self.config)
        self.rng = random.Random(self.config.seed)
        self.records = Records()
        self.log.clear()
        self.faults.clear()
        self.most_answering = self.answering

    @contextlib.contextmanager
    def answering_one(self) -> Iterator[None]:
        """Count one BPJS request from its arrival to its answer (or dropped connection)."""
        self.answering += 1
        self.most_answering = max(self.most_answering, self.answering)
        try:
            yield
        finally:
            self.answering -= 1

    # -- log ---------------------------------------------------------------------------

    def new_entry(self, method: str, path: str, query: str, service: str | None,
                  headers: Mapping[str, str], body: Any, target: str) -> LogEntry:
        entry = LogEntry(seq=next(self._seq), time=self.clock(), method=method, path=path,
                         query=query, target=target, service=service, headers=dict(headers),
                         body=body, outcome="pending", status=None, code=None, answer=None,
                         fault=None, applied=False)
        self.log.append(entry)
        return entry

    def entries(self, path_contains: str | None = None, outcome: str | None = None,
                method: str | None = None) -> list[LogEntry]:
        """Log entries, filtered; ``path_contains`` is case-insensitive."""
        needle = (path_contains or "").lower()
        return [e for e in self.log
                if needle in e["path"].lower()
                and (outcome is None or e["outcome"] == outcome)
                and (method is None or e["method"] == method.upper())]

    # -- faults ------------------------------------------------------------------------

    def add_fault(self, doc: Mapping[str, Any]) -> Fault:
        fault = parse_fault(doc, next(self._fault_ids))
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first queued fault matching this request, used up by one."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # -- waiting -----------------------------------------------------------------------

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the simulator is shutting down. Cancellable."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop(self) -> None:
        """Release every held request (shutdown). Idempotent."""
        self._stopping.set()

    def restart(self) -> None:
        """Allow waits again after ``stop`` (a state reused by a second app)."""
        self._stopping = asyncio.Event()

    def snapshot(self) -> dict[str, Any]:
        return {**self.records.snapshot(), "settings": self.settings.as_dict(),
                "faults": [f.as_dict() for f in self.faults],
                "concurrency": {"now": self.answering, "most": self.most_answering}}


STATE = web.AppKey("bpjs_simulator_state", SimulatorState)
