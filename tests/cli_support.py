"""`tenang` run as the command it is, the way an operator types it: ``python -m proxy``
from the repository's root, in a process of its own, with the admin token the tests use."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import ADMIN_TOKEN

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TENANG_ADMIN_TOKEN": ADMIN_TOKEN}


def tenang(*args: str, env: Mapping[str, str] = ENV, stdin: str | None = None,
           timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``tenang ARGS`` to its end: exit code, stdout and stderr; ``stdin``: its input."""
    return subprocess.run([sys.executable, "-m", "proxy", *args], cwd=REPO, env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def store_config_file(folder: Path, url: str, extra: str = "",
                      name: str = "tenang.toml") -> Path:
    """A config of the store at ``url`` for the commands; ``extra``: more TOML (sections)."""
    path = folder / name
    path.write_text(f"""
[store]
url = "{url}"
{extra}

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "http://127.0.0.1:9/antreanrs"
""", encoding="utf-8")
    return path
