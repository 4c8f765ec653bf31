"""The README's first command: `tenang demo` queues, retries and delivers against the
BPJS simulator, and leaves a database whose requests succeeded."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_queues_retries_and_delivers(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "proxy", "demo", "--dir", str(tmp_path), "--port", "0",
         "--admin-port", "0", "--duration", "10", "--fail-rate", "0.4"],
        capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "HTTP 202" in run.stdout
    assert "TENANG  queue" in run.stdout
    with closing(sqlite3.connect(tmp_path / "tenang-demo.db")) as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM requests GROUP BY 1"))
        retried = conn.execute(
            "SELECT COUNT(*) FROM requests WHERE status='succeeded' AND attempts > 1"
        ).fetchone()[0]
    assert statuses.get("succeeded", 0) >= 4
    assert set(statuses) <= {"succeeded", "pending", "in_flight"}
    assert retried >= 1, "with 40 % of calls failing, some must have needed a retry"
