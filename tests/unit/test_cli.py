"""The `tenang` command line itself: --version, --log-level anywhere and only valid
levels, help text on every option, the environment variables `serve --help` names, and
a clear message instead of a traceback where no terminal can be asked for a password."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from proxy.cli import _parser

REPO = Path(__file__).resolve().parents[2]


def tenang(*args: str, stdin: int | None = subprocess.DEVNULL,
           text_in: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], cwd=REPO,
                          env={**os.environ, "TENANG_ADMIN_TOKEN": "tok"},
                          stdin=None if text_in is not None else stdin, input=text_in,
                          capture_output=True, text=True, timeout=60, check=False)


def all_parsers(parser: argparse.ArgumentParser,
                name: str = "tenang") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


def test_version_prints_the_installed_version() -> None:
    result = tenang("--version")
    assert result.returncode == 0
    assert result.stdout == f"tenang {version('tenang')}\n"


@pytest.mark.parametrize("argv", [
    ["--log-level", "debug", "check-config", "--config", "x.toml"],
    ["check-config", "--log-level", "DEBUG", "--config", "x.toml"],
    ["check-config", "--config", "x.toml", "--log-level", "debug"],
    ["user", "add", "siti", "--role", "admin", "--config", "x", "--log-level", "debug"],
    ["--log-level", "debug", "user", "hash"],
])
def test_log_level_works_before_or_after_the_command(argv: list[str]) -> None:
    assert _parser().parse_args(argv).log_level == "DEBUG"


def test_log_level_defaults_to_info() -> None:
    assert _parser().parse_args(["check-config", "--config", "x"]).log_level == "INFO"
    assert _parser().parse_args(["user", "hash"]).log_level == "INFO"


@pytest.mark.parametrize("where", ["before", "after"])
def test_an_unknown_log_level_is_a_usage_error_not_a_traceback(where: str) -> None:
    args = ["check-config", "--config", "x.toml"]
    result = tenang(*(["--log-level", "foo", *args] if where == "before"
                      else [*args, "--log-level", "foo"]))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert ("argument --log-level: invalid choice: 'FOO' (choose from 'DEBUG', 'INFO', "
            "'WARNING', 'ERROR', 'CRITICAL')") in result.stderr


def test_every_option_and_argument_has_help_text() -> None:
    missing = [f"{name}: {'/'.join(a.option_strings) or a.dest}"
               for name, parser in all_parsers(_parser())
               for a in parser._actions
               if not isinstance(a, argparse._SubParsersAction)
               and a.help in (None, "") and a.dest != "help"]
    assert missing == []


def test_serve_help_names_the_environment_variables_it_reads() -> None:
    result = tenang("serve", "--help")
    assert result.returncode == 0
    for key in ("TENANG_ADMIN_TOKEN", "admin.token_env", "upstreams.secret_env",
                "upstreams.user_key_env", "metrics.token_env", "server.results_token_env",
                "notify.smtp.password_env"):
        assert key in result.stdout, key


def test_the_standin_command_is_gone_and_not_installed() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["standin"])
    assert not (REPO / "proxy" / "standin.py").exists()
    assert not (REPO / "tests" / "standin.py").exists(), "tests use the BPJS simulator"


@pytest.mark.parametrize("command", [["user", "hash"],
                                     ["user", "add", "siti", "--role", "admin"]])
def test_user_commands_without_a_terminal_say_to_use_password_stdin(
        tmp_path: Path, command: list[str]) -> None:
    argv = [*command, "--config", str(tmp_path / "t.toml")] if "add" in command else command
    result = tenang(*argv)  # stdin is /dev/null: no terminal to prompt on
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "EOFError" not in result.stderr
    assert result.stderr.startswith("tenang: no terminal to ask for the password on: pipe "
                                    "it in with --password-stdin"), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_password_stdin_with_nothing_piped_in_is_named() -> None:
    result = tenang("user", "hash", "--password-stdin", text_in="")
    assert result.returncode == 2
    assert result.stderr == ("tenang: --password-stdin: standard input held no password "
                             "line\n")
