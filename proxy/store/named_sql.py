"""Named blocks of a .sql file: a line ``-- name --`` starts the block ``name``, which runs
to the next such line (the procrastinate queries.sql layout), so the SQL reads and diffs
as SQL. Comment lines before the first block are the file's header. Every SQL backend
keeps its statements this way (``sqlite/queries.sql``, ``postgres/schema.sql``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files

_HEADER = re.compile(r"^-- ([a-z0-9_ ]+) --$", re.M)


def blocks(text: str) -> dict[str, str]:
    """The blocks of ``text`` by name, in file order; a name used twice is an error."""
    found: dict[str, str] = {}
    marks = list(_HEADER.finditer(text))
    for mark, after in zip(marks, [*marks[1:], None], strict=True):
        name = mark[1].strip()
        if name in found:
            raise ValueError(f"SQL block {name!r} defined twice")
        found[name] = text[mark.end():after.start() if after else len(text)].strip()
    return found


def load(package: str, name: str) -> dict[str, str]:
    """The blocks of the file ``name`` (e.g. "queries.sql") in ``package``."""
    return blocks(files(package).joinpath(name).read_text(encoding="utf-8"))


_PLACEHOLDER = re.compile(r"\{([A-Z_]+)\}")


def render(queries: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """``queries`` with every ``{NAME}`` replaced by ``values[NAME]``; an unknown name is
    an error at import, not a syntax error at the first call. Lower-case ``{name}``s are
    left for the caller to fill per call."""
    def one(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise ValueError(f"SQL placeholder {{{match[1]}}} has no value")
        return values[match[1]]

    return {name: _PLACEHOLDER.sub(one, text) for name, text in queries.items()}
