"""The open-file limit leaves room for both ports' max_connections (issue 10.4): run in
a child process, since it changes a process-wide limit."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

CHILD = """
import resource, sys
from proxy.server import Limits, ensure_fd_room
soft, hard = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
warning = ensure_fd_room([Limits(10.0, 30.0, 75.0, 1024), Limits(10.0, 30.0, 75.0, 1024)])
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
print(warning or "")
"""


def child(soft: int, hard: int) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(soft), str(hard)],
                          capture_output=True, text=True, check=True)
    limit, _, warning = done.stdout.partition("\n")
    return int(limit), warning.strip()


def _hard() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


@pytest.mark.skipif(_hard() < 4096, reason="hard open-file limit below 4096 here")
def test_a_soft_limit_of_1024_is_raised_to_what_both_caps_need() -> None:
    limit, warning = child(1024, _hard())
    assert limit >= 2 * 1024 + 256
    assert warning == ""


def test_a_hard_limit_too_low_for_the_caps_is_named() -> None:
    limit, warning = child(600, 600)
    assert limit == 600
    assert "LimitNOFILE" in warning and "max_connections" in warning
