"""Every backend fills every role, with every verb of its protocol, as the protocol spells it.

A protocol is checked only by the type checker where a backend is built; this test also
catches a parameter renamed or a default changed in one backend only (the contract tests
call verbs positionally), and a role left unfilled. It reads the protocols' members, so a
new verb is covered without editing this file.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from proxy.store.backend import Backend
from proxy.store.protocols import ROLES
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
