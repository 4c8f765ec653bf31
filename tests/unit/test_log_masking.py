"""Log lines never carry a patient identifier in full: the messages and tracebacks that
quote a SIMRS's path, BPJS's answer or a body are masked like the viewer role's view (all
but the last four digits), through the handler `tenang serve` logs with."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from proxy.observe.logs import setup_logging

CARD, NIK, PHONE = "0001234567890", "3201012345678901", "081234567890"


@pytest.fixture
def serving_log() -> Iterator[Callable[[], str]]:
    """The root handler `tenang serve` installs (``setup_logging``), writing to a buffer
    instead of stderr; what it wrote."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    setup_logging("INFO")
    out = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    try:
        yield out.getvalue
    finally:
        root.handlers[:], root.level = saved, level


def test_a_path_a_reason_and_a_traceback_are_masked(serving_log: Callable[[], str]) -> None:
    relay = logging.getLogger("tenang.relay")
    relay.warning("request %s -> %s (%s)", "01KTEST", "failed",
                  f"rejected by upstream (code 201: Peserta NoKa {CARD} tidak aktif)",
                  extra={"upstream": "vclaim", "request_id": "01KTEST"})
    logging.getLogger("tenang.intake").info(
        "passthrough %s %s answered by Tenang: %s", "GET",
        f"/vclaim-rest/Peserta/nokartu/{CARD}/tglSEP/2026-12-01", "cached")
    try:
        json.loads(json.dumps({"nik": NIK, "nohp": PHONE}) + "}")
    except ValueError:
        body = json.dumps({"nik": NIK, "nohp": PHONE})
        try:
            raise RuntimeError(f"cannot store body {body}")
        except RuntimeError:
            logging.getLogger("tenang.store").exception("intake failed on %s", body)
    out = serving_log()
    for full in (CARD, NIK, PHONE):
        assert full not in out, f"{full} in the log"
    assert "*********7890" in out and "************8901" in out and "********7890" in out
    # What the lines are for is still there: who, what, the context.
    assert "request 01KTEST -> failed" in out and "[upstream=vclaim request_id=01KTEST]" in out
    assert "/Peserta/nokartu/*********7890/tglSEP/2026-12-01" in out
    assert "Traceback" in out and "RuntimeError: cannot store body" in out
