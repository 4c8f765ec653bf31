"""Each room of the house imports only what its one rule allows (docs/ARCHITECTURE.md,
"What each room may import").

Every module under proxy/ and admin_ui/ is parsed with ``ast`` (nothing is imported, so
a broken rule is reported even where the import would work). A failure names the module,
the line, the forbidden import and the rule it breaks. When a rule fails, move the code
to the room it belongs to rather than widening the rule; a rule that really changes is
changed here and in the document together (the last test keeps them the same).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
PACKAGES = ("proxy", "admin_ui")

# Entry points and the composition root: they put the rooms together, so they may
# import every room, and no room imports them. Every command module (cli, cli_*) is one,
# and so are the start-up checks the commands run before anything starts (preflight).
ENTRY = frozenset({"proxy.app", "proxy.cli", "proxy.preflight", "proxy.demo", "proxy.__main__"})
# Sub-packages that are rooms. Every other top-level module of proxy/ (errors, ids,
# shapes, tokens, http_timeouts, loop, server, ...) is "shared".
ROOM_PACKAGES = {
    "proxy.intake": "intake",
    "proxy.delivery": "delivery",
    "proxy.ops": "ops",
    "proxy.observe": "observe",
    "proxy.store": "store",
    "proxy.policies": "policies",
    "proxy.bpjs": "bpjs",
    "admin_ui": "admin_ui",
}
# The store's seam: what a room outside the store may see of it. Choosing and opening a
# backend (``proxy.store.open_store``, the backend packages) is the entry points' alone;
# every other room takes the roles it is given.
# ``chain`` is the hash chain's records and its pure encoding and walk (what `tenang audit
# verify` and the UI check with), as plain as ``records`` and ``rules``.
STORE_SEAM = frozenset({"proxy.store.protocols", "proxy.store.records", "proxy.store.errors",
                        "proxy.store.rules", "proxy.store.chain", "proxy.store.backend"})
SEAM_RULE = ("Every other room sees the store only through its seam: store.protocols, "
             "records, errors, rules, chain and backend.")


def within(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def room_of(module: str) -> str:
    if module in ENTRY or module.startswith("proxy.cli_"):
        return "entry"
    if module == "proxy.lifecycle":
        return "lifecycle"
    if module == "proxy.config" or module.startswith("proxy.config_"):
        return "config"
    for package, room in ROOM_PACKAGES.items():
        if within(module, package):
            return room
    return "shared"


@dataclass(frozen=True)
class Rule:
    text: str  # the rule as docs/ARCHITECTURE.md states it
    rooms: frozenset[str]  # whole rooms it may import (its own is always allowed)
    modules: frozenset[str] = frozenset()  # single modules (and what is inside them)
    type_only: frozenset[str] = frozenset()  # modules it may name under TYPE_CHECKING only
    # Named modules of the room that also may import these (each says why in the doc).
    exceptions: dict[str, frozenset[str]] = field(default_factory=dict)
    # The same, for type hints only.
    type_only_exceptions: dict[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, module: str, target: str, type_only: bool) -> bool:
        return (room_of(target) in self.rooms | {room_of(module)}
                or any(within(target, m) for m in self.modules)
                or any(within(target, m) for m in self.exceptions.get(module, ()))
                or (type_only and (
                    any(within(target, m) for m in self.type_only)
                    or any(within(target, m) for m in self.type_only_exceptions.get(module, ())))))


BELOW_STAGES = frozenset({"observe", "store", "policies", "bpjs", "lifecycle", "config", "shared"})
# What the store hands out as plain values.
STORE_VALUES = frozenset({"proxy.store.records", "proxy.store.errors"})

RULES: dict[str, Rule] = {
    "bpjs": Rule(
        "bpjs imports only bpjs: it knows BPJS, not Tenang.",
        frozenset(),
        exceptions={"proxy.bpjs.simulator.serve": frozenset({"proxy.config", "proxy.preflight"})}),
    "shared": Rule(
        "A shared module imports no room: only config and the other shared modules "
        "(app_keys names the services it keys, for type hints only).",
        frozenset({"config"}),
        type_only_exceptions={"proxy.app_keys": frozenset(
            {*ROOM_PACKAGES, "proxy.lifecycle", "proxy.config"})}),
    "config": Rule(
        "config reads only bpjs (the presets) and policies.retry, besides shared modules.",
        frozenset({"bpjs", "shared"}), frozenset({"proxy.policies.retry"})),
    "lifecycle": Rule(
        "lifecycle imports only errors and policies.retry; the store's records for type "
        "hints only.",
        frozenset(), frozenset({"proxy.errors", "proxy.policies.retry"}),
        type_only=frozenset({"proxy.store.records"})),
    "policies": Rule(
        "policies imports only lifecycle, bpjs and shared modules.",
        frozenset({"lifecycle", "bpjs", "shared"})),
    "store": Rule(
        "store imports only lifecycle, config and shared modules: never a room.",
        frozenset({"lifecycle", "config", "shared"})),
    "observe": Rule(
        "observe imports no stage (intake, delivery, ops, admin_ui) and of the store only "
        "its records and errors.",
        BELOW_STAGES - {"store"}, STORE_VALUES),
    "delivery": Rule(
        "delivery never imports intake, ops or admin_ui.",
        BELOW_STAGES),
    "intake": Rule(
        "intake never imports ops or admin_ui, and of delivery only relay and live (the live "
        "send of deadline mode) and upstream (the HTTP client passthrough reads use).",
        BELOW_STAGES,
        frozenset({"proxy.delivery.relay", "proxy.delivery.live", "proxy.delivery.upstream"})),
    "ops": Rule(
        "ops never imports intake or admin_ui, and of delivery only callbacks (an operator's "
        "final move queues the same callback a delivery does).",
        BELOW_STAGES, frozenset({"proxy.delivery.callbacks"})),
    "admin_ui": Rule(
        "admin_ui is a client of ops: it never imports intake, delivery or policies, and of "
        "observe only redact.",
        BELOW_STAGES - {"observe", "policies"} | {"ops"}, frozenset({"proxy.observe.redact"})),
    "entry": Rule(
        "Only the entry points (app, cli and cli_*, preflight, demo, __main__) import every "
        "room, and "
        "only they open a store (proxy.store.open_store) or name a backend.",
        frozenset(ROOM_PACKAGES.values()) | {"lifecycle", "config", "shared"}),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    path: str
    line: int
    target: str  # the module imported (``from proxy.bpjs import crypto`` is proxy.bpjs.crypto)
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_in(source: str, module: str, path: str = "<test>") -> list[Import]:
    """The imports of our own packages in ``source``, the code of ``module``, wherever
    they stand (in a function too), in line order."""
    tree = ast.parse(source)
    type_only = {id(inner) for node in ast.walk(tree)
                 if isinstance(node, ast.If) and _is_type_checking(node.test)
                 for statement in node.body for inner in ast.walk(statement)}
    found: list[Import] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = module.split(".")
                keep = len(package) - node.level + (1 if path.endswith("__init__.py") else 0)
                base = ".".join([*package[:keep], *([base] if base else [])])
            targets = [f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base
                       for a in node.names]
        found += [Import(module, path, node.lineno, target, id(node) in type_only)
                  for target in dict.fromkeys(targets)
                  if target.split(".")[0] in PACKAGES]
    return sorted(found, key=lambda i: (i.line, i.target))


def all_imports() -> Iterator[Import]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            yield from imports_in(path.read_text(encoding="utf-8"), module_name(path), rel)


def broken(imports: list[Import], room: str) -> list[str]:
    rule = RULES[room]
    return [f"{i.path}:{i.line} ({i.module}) imports {i.target}: {rule.text}"
            for i in imports
            if room_of(i.module) == room and not rule.allows(i.module, i.target, i.type_only)]


IMPORTS = list(all_imports())


@pytest.mark.parametrize("room", sorted(RULES))
def test_each_room_imports_only_what_its_rule_allows(room: str) -> None:
    assert any(room_of(i.module) == room for i in IMPORTS), f"no module of {room} imports ours"
    if found := broken(IMPORTS, room):
        pytest.fail("\n".join(found), pytrace=False)


def past_the_seam(imports: list[Import]) -> list[str]:
    return [f"{i.path}:{i.line} ({i.module}) imports {i.target}: {SEAM_RULE}"
            for i in imports
            if room_of(i.module) not in ("entry", "store") and room_of(i.target) == "store"
            and not any(within(i.target, m) for m in STORE_SEAM)]


def test_other_rooms_see_the_store_only_through_its_seam() -> None:
    if found := past_the_seam(IMPORTS):
        pytest.fail("\n".join(found), pytrace=False)


def test_a_broken_rule_is_reported_with_module_import_and_rule() -> None:
    source = ("from typing import TYPE_CHECKING\n"
              "from proxy.store.records import StoredRequest\n"
              "if TYPE_CHECKING:\n"
              "    from proxy.intake.gateway import Gateway\n"
              "def f() -> None:\n"
              "    from proxy.ops import operations\n")
    found = imports_in(source, "proxy.store.sqlite.extra", "proxy/store/sqlite/extra.py")
    assert [(i.target, i.type_only) for i in found] == [
        ("proxy.store.records", False), ("proxy.intake.gateway", True),
        ("proxy.ops.operations", False)]
    assert broken(found, "store") == [
        f"proxy/store/sqlite/extra.py:4 (proxy.store.sqlite.extra) imports "
        f"proxy.intake.gateway: {RULES['store'].text}",
        f"proxy/store/sqlite/extra.py:6 (proxy.store.sqlite.extra) imports "
        f"proxy.ops.operations: {RULES['store'].text}"]
    # A backend named outside the store and the entry points is past the seam.
    opened = imports_in("from proxy.store.sqlite import sqlite_backend\n"
                        "from proxy.store.records import StoredRequest\n",
                        "proxy.ops.extra", "proxy/ops/extra.py")
    assert past_the_seam(opened) == [
        f"proxy/ops/extra.py:1 (proxy.ops.extra) imports proxy.store.sqlite: {SEAM_RULE}"]
    # A type-only look at the store's records is lifecycle's one allowance, at run time none.
    records = imports_in("from proxy.store.records import StoredRequest\n", "proxy.lifecycle")
    assert broken(records, "lifecycle") != []


def test_docs_architecture_states_every_rule_as_written_here() -> None:
    doc = re.sub(r"\s+", " ", ARCHITECTURE.read_text(encoding="utf-8").replace("`", ""))
    texts = {**{room: rule.text for room, rule in RULES.items()}, "store seam": SEAM_RULE}
    missing = [f"{room}: {text}" for room, text in texts.items()
               if re.sub(r"\s+", " ", text) not in doc]
    if missing:
        pytest.fail("docs/ARCHITECTURE.md lacks:\n" + "\n".join(missing), pytrace=False)
