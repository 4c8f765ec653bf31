"""One Tenang and one simulator per fuzz module (hypothesis runs many examples against
the same servers: they must survive each other's inputs too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.stack import Stack, iter_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from iter_stack(Path(tmp_path_factory.mktemp("fuzz")))
