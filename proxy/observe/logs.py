"""Log lines carry their context (request_id, upstream) when a call site gives it, and
never a patient identifier in full.

A line may quote what a SIMRS sent or BPJS answered: a path (``/Peserta/nokartu/...``),
a query, a reason with BPJS's message (``Peserta NoKa 0001234567890 tidak aktif``), an
exception naming a body. Logs go to journald, log shippers and whoever reads them, none
of whom holds the auditor role, so every message and traceback is masked as the viewer
role is shown stored requests (``proxy.observe.patient_data.mask_text``: all but the
last four digits), here at the one formatter rather than at each call site.
"""

from __future__ import annotations

import logging
from types import TracebackType

from proxy.observe.patient_data import mask_text

_CONTEXT = ("upstream", "request_id")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | \
    tuple[None, None, None]


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{k}={getattr(record, k)}" for k in _CONTEXT if hasattr(record, k)]
        return f"{line} [{' '.join(extras)}]" if extras else line

    # logging.Formatter's hooks: the message alone (its arguments filled in, before the
    # time is put in front), and a traceback.
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = mask_text(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: ExcInfo) -> str:
        return mask_text(super().formatException(ei))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
