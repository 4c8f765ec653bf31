"""Every backend fills every role, with every verb of its protocol, as the protocol spells it;
and the SQLite backend's statements are all in queries.sql, each one used.

A protocol is checked only by the type checker where a backend is built; this test also
catches a parameter renamed or a default changed in one backend only (the contract tests
call verbs positionally), and a role left unfilled. It reads the protocols' members, so a
new verb is covered without editing this file.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import proxy.store.sqlite as sqlite_package
from proxy.lifecycle import STUCK, sql_in
from proxy.store.backend import Backend
from proxy.store.protocols import ROLES
from proxy.store.sqlite.queries import QUERIES
from tests.store.conftest import BACKENDS


def verbs(protocol: type) -> dict[str, inspect.Signature]:
    """The protocol's own methods (not those of ``typing.Protocol``) and their signatures."""
    return {name: inspect.signature(member) for name, member in vars(protocol).items()
            if callable(member) and not name.startswith("_")}


def shape(signature: inspect.Signature) -> list[tuple[str, Any, Any]]:
    """What a caller relies on: names, kinds and defaults (annotations are the type
    checker's: as strings under ``from __future__ import annotations`` they differ only
    by how a module imported a name)."""
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_every_role_of_the_backend_has_a_protocol() -> None:
    assert [f.name for f in dataclasses.fields(Backend)] == list(ROLES)


def test_every_role_protocol_is_narrow() -> None:
    sizes = {role: len(verbs(protocol)) for role, protocol in ROLES.items()}
    assert all(0 < n <= 8 for n in sizes.values()), sizes


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_the_backend_fills_every_role_with_every_verb(kind: str, tmp_path: Path) -> None:
    backend = BACKENDS[kind](tmp_path)
    for role, protocol in ROLES.items():
        filler = getattr(backend, role)
        for name, wanted in verbs(protocol).items():
            method = getattr(filler, name, None)
            assert method is not None, f"{kind}: {role} lacks {name}"
            assert inspect.iscoroutinefunction(method) == inspect.iscoroutinefunction(
                getattr(protocol, name)), f"{kind}: {role}.{name} sync/async differs"
            got = inspect.signature(method)
            assert shape(got) == shape(wanted)[1:], (
                f"{kind}: {role}.{name}{got} differs from the protocol's {wanted}")


# --- the SQLite backend's named queries ------------------------------------------------------

SQLITE_PACKAGE = Path(sqlite_package.__file__).parent
QUERY_REFERENCE = re.compile(r'QUERIES\["([a-z0-9_]+)"\]')


def test_every_named_query_is_used_and_every_used_name_exists() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SQLITE_PACKAGE.glob("*.py")))
    used = set(QUERY_REFERENCE.findall(code))
    assert sorted(set(QUERIES) - used) == [], "in queries.sql, used nowhere"
    assert sorted(used - set(QUERIES)) == [], "used, but not in queries.sql"


def test_no_sql_is_left_in_the_sqlite_backends_python() -> None:
    statement = re.compile(r'"\s*(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b')
    found = [f"{p.name}: {m.group(0)}" for p in sorted(SQLITE_PACKAGE.glob("*.py"))
             if p.name != "schema.py"  # migrations are history, written as they ran
             for m in statement.finditer(p.read_text(encoding="utf-8"))]
    assert found == []


def test_status_lists_and_columns_are_filled_in_and_only_per_call_names_remain() -> None:
    left = {name: set(re.findall(r"\{(\w+)\}", sql)) for name, sql in QUERIES.items()}
    assert set().union(*left.values()) <= {"ids", "where", "rows"}
    assert sql_in(STUCK) in QUERIES["hold_behind_stuck"]
