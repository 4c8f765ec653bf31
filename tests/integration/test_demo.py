"""The README's first command: `tenang demo` queues, retries and delivers against the
BPJS simulator, leaves a database whose requests succeeded, and stops cleanly on Ctrl-C.

The simulator fails calls at random, so how long delivery takes varies from run to run:
the test watches the database until the demo has shown what it promises (or a generous
deadline passes) instead of giving it a fixed run time."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

DEADLINE_S = 90.0


def _statuses(db: Path) -> tuple[dict[str, int], int]:
    """Counts per status, and how many succeeded only after a retry."""
    if not db.exists():
        return {}, 0
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            statuses = dict(conn.execute("SELECT status, COUNT(*) FROM requests GROUP BY 1"))
            retried = conn.execute(
                "SELECT COUNT(*) FROM requests WHERE status='succeeded' AND attempts > 1"
            ).fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not created yet
            return {}, 0
    return statuses, retried


@pytest.mark.slow
def test_demo_queues_retries_and_delivers(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    db = tmp_path / "tenang-demo.db"
    with out.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "proxy", "demo", "--dir", str(tmp_path), "--port", "0",
             "--admin-port", "0", "--fail-rate", "0.4"],
            stdout=sink, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline and demo.poll() is None:
                statuses, retried = _statuses(db)
                printed = out.read_text()
                if (statuses.get("succeeded", 0) >= 4 and retried >= 1
                        and "TENANG  queue" in printed):
                    break
                time.sleep(0.2)  # polling interval of the deadline loop
            demo.send_signal(signal.SIGINT)
            assert demo.wait(timeout=30) == 0, out.read_text()[-2000:]
        finally:
            if demo.poll() is None:
                demo.kill()
    printed = out.read_text()
    statuses, retried = _statuses(db)
    assert "HTTP 202" in printed
    assert "TENANG  queue" in printed
    assert "TENANG  stopping" in printed
    assert statuses.get("succeeded", 0) >= 4, (statuses, printed[-2000:])
    assert set(statuses) <= {"succeeded", "pending", "in_flight"}, statuses
    assert retried >= 1, "with 40 % of calls failing, some must have needed a retry"


def _run_briefly(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`tenang demo` for a few seconds, its temporary directories under ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-m", "proxy", "demo", "--port", "0", "--admin-port", "0",
         "--duration", "2", *extra],
        env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True,
        timeout=DEADLINE_S, check=False)


def _workdir(printed: str) -> Path:
    found = re.search(r"config and data  : (\S+) \(fresh for this run, kept afterwards\)",
                      printed)
    assert found, printed
    return Path(found[1])


def _bookings(db: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return {json.loads(body)["kodebooking"]
                for (body,) in conn.execute("SELECT body FROM requests")}


@pytest.mark.slow
def test_each_demo_run_starts_from_a_fresh_directory_and_says_where(tmp_path: Path) -> None:
    first, second = _run_briefly(tmp_path), _run_briefly(tmp_path)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    one, two = _workdir(first.stdout), _workdir(second.stdout)
    assert one != two and one.parent == two.parent == tmp_path
    assert f"database         : {two / 'tenang-demo.db'}" in second.stdout
    assert f"this run's config and database stay in {two}" in second.stdout
    old, new = _bookings(one / "tenang-demo.db"), _bookings(two / "tenang-demo.db")
    assert old and new and not old & new, "the second run must not see the first's requests"


def test_demo_refuses_a_dir_holding_an_earlier_database(tmp_path: Path) -> None:
    (tmp_path / "tenang-demo.db").write_bytes(b"")

    result = _run_briefly(tmp_path, "--dir", str(tmp_path))

    assert result.returncode == 2
    assert result.stderr == (f"tenang: --dir {tmp_path} holds an earlier demo's database; "
                             "pick another directory (or leave --dir out for a new "
                             "temporary one)\n")
