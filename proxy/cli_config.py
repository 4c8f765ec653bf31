"""The ``--config`` option every command that reads a config file takes alike."""

from __future__ import annotations

import argparse
from pathlib import Path


def config_arg(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--config", type=Path, required=True,
                     help="path to the TOML config (see config.example.toml)")
