"""`tenang user add NAME --role ROLE --config FILE`, `tenang user remove NAME --config
FILE` and `tenang user hash`: admin UI users.

``add`` writes the user into the store database named by the config file (Tenang may be
running: SQLite lets a second writer in between its commits). ``hash`` prints an argon2
hash for a ``[[admin.users]]`` entry. Passwords are prompted for (twice) or read as one
line from standard input with ``--password-stdin``; they never appear as arguments,
where ``ps`` and shell history would show them.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import time
from pathlib import Path

from proxy.config import load_config
from proxy.loop import run
from proxy.ops.auth import Role, hash_password
from proxy.store import open_store
from proxy.store.errors import Conflict, StoreError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # as config.py checks [[admin.users]]
MIN_PASSWORD = 8


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                  common: argparse.ArgumentParser) -> None:
    """``common``: the options every command takes (e.g. --log-level)."""
    user = sub.add_parser("user", help="manage admin UI users", parents=[common])
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user to the store database",
                             parents=[common])
    add.add_argument("name", help="login name: lowercase letters, digits, - and _")
    add.add_argument("--role", required=True, choices=[r.value for r in Role],
                     help="viewer: read; operator: retry/cancel; auditor: read + CSV "
                          "export; admin: everything")
    add.add_argument("--config", type=Path, required=True, help="path to the TOML config")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password as one line from standard input")
    add.add_argument("--replace", action="store_true",
                     help="set a new password and role for an existing user")
    remove = actions.add_parser("remove", help="delete a user and end their sessions",
                                parents=[common])
    remove.add_argument("name", help="login name of the user to delete")
    remove.add_argument("--config", type=Path, required=True, help="path to the TOML config")
    hashing = actions.add_parser("hash", help="print an argon2 hash for [[admin.users]]",
                                 parents=[common])
    hashing.add_argument("--password-stdin", action="store_true",
                         help="read the password as one line from standard input")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValueError("--password-stdin: standard input held no password line")
    elif not sys.stdin.isatty():
        # getpass would fall back to reading the pipe with a warning, or die on EOF.
        raise ValueError("no terminal to ask for the password on: pipe it in with "
                         "--password-stdin (one line), e.g. "
                         "`printf '%s\\n' \"$PW\" | tenang user add ... --password-stdin`")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise ValueError("the passwords differ")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    return password


async def _remove(config_path: Path, name: str) -> bool:
    backend = open_store(load_config(config_path).store)
    await backend.open()
    try:
        removed = await backend.accounts.remove_user(name)
        if removed:
            await backend.audit.audit("cli", "user_remove", name, None, time.time())
        return removed
    finally:
        await backend.close()


async def _add(config_path: Path, name: str, role: str, password_hash: str,
               replace: bool) -> None:
    backend = open_store(load_config(config_path).store)
    await backend.open()
    try:
        now = time.time()
        await backend.accounts.add_user(name, password_hash, role, now, replace=replace)
        await backend.audit.audit("cli", "user_replace" if replace else "user_add", name,
                                  f"role {role}", now)
    finally:
        await backend.close()


def main(args: argparse.Namespace) -> int:
    """Run `tenang user ...`; ValueError / ConfigError propagate to the CLI's handler."""
    if args.user_command == "hash":
        print(hash_password(read_password(args.password_stdin)))
        return 0
    if args.user_command == "remove":
        try:
            removed = run(_remove(args.config, args.name))
        except StoreError as exc:
            print(f"tenang: cannot remove the user: {exc.reason}", file=sys.stderr)
            return 1
        print(f"user {args.name} removed" if removed else f"no user {args.name!r}")
        return 0 if removed else 1
    if not NAME.match(args.name):
        raise ValueError(f"user name {args.name!r}: use lowercase letters, digits, - and _")
    password_hash = hash_password(read_password(args.password_stdin))
    try:
        run(_add(args.config, args.name, args.role, password_hash, args.replace))
    except Conflict:
        print(f"tenang: user {args.name!r} exists; add --replace to set a new password "
              "and role", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"tenang: cannot write the user: {exc.reason}", file=sys.stderr)
        return 1
    print(f"user {args.name} ({args.role}) saved in {args.config}'s store")
    return 0
