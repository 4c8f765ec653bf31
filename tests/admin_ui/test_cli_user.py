"""`tenang user add` and `tenang user hash`."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from proxy.cli import main
from proxy.store.records import User
from proxy.store.sqlite import sqlite_backend

CONFIG = """
[store]
url = "sqlite:///./data/t.db"

[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "https://example.test/antreanrs"
"""


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """cli.main installs a handler on the stderr pytest captures for this test only;
    later tests would log into that closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "tenang.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _user(tmp_path: Path, name: str) -> User | None:
    async def read() -> User | None:
        store = sqlite_backend(tmp_path / "data" / "t.db")
        await store.open()
        try:
            return await store.accounts.get_user(name)
        finally:
            await store.close()

    return asyncio.run(read())


def _run(monkeypatch: pytest.MonkeyPatch, stdin: str, *argv: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(argv))


def test_user_add_writes_an_argon2_hash_to_the_store(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = str(_config(tmp_path))
    assert _run(monkeypatch, "kata-sandi-panjang\n", "user", "add", "siti", "--role",
                "operator", "--config", config, "--password-stdin") == 0
    user = _user(tmp_path, "siti")
    assert user is not None and user.role == "operator"
    assert user.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(user.password_hash, "kata-sandi-panjang")

    assert _run(monkeypatch, "another-password\n", "user", "add", "siti", "--role", "admin",
                "--config", config, "--password-stdin") == 1, "exists: needs --replace"
    assert _run(monkeypatch, "another-password\n", "user", "add", "siti", "--role", "admin",
                "--config", config, "--password-stdin", "--replace") == 0
    user = _user(tmp_path, "siti")
    assert user is not None and user.role == "admin"
    assert PasswordHasher().verify(user.password_hash, "another-password")


def test_user_remove_deletes_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = str(_config(tmp_path))
    _run(monkeypatch, "kata-sandi-panjang\n", "user", "add", "siti", "--role", "viewer",
         "--config", config, "--password-stdin")
    assert main(["user", "remove", "siti", "--config", config]) == 0
    assert _user(tmp_path, "siti") is None
    assert main(["user", "remove", "siti", "--config", config]) == 1


@pytest.mark.parametrize(("name", "password"), [("Siti Aminah", "long-enough"),
                                                ("siti", "short")])
def test_user_add_refuses_bad_names_and_short_passwords(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, password: str) -> None:
    config = str(_config(tmp_path))
    assert _run(monkeypatch, password + "\n", "user", "add", name, "--role", "viewer",
                "--config", config, "--password-stdin") == 2


def test_user_add_refuses_an_unknown_role(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["user", "add", "siti", "--role", "root", "--config", str(_config(tmp_path))])


def test_user_hash_prints_a_hash_for_the_config_file(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(monkeypatch, "kata-sandi-panjang\n", "user", "hash", "--password-stdin") == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$")
    assert PasswordHasher().verify(printed, "kata-sandi-panjang")
