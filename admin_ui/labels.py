"""Names ops staff read: what an endpoint does ("Antrean: waktu tugas"), not its rule
name (``antrean.updatewaktu``).

The labels live in the locale catalogs as ``endpoint.<name>``; a test keeps one there for
every endpoint of every preset (``proxy.bpjs.presets``), so a new preset endpoint cannot
ship without one. A custom route's own name has no label and is shown as it is.
"""

from __future__ import annotations

from admin_ui.i18n import Translator
from proxy.bpjs.presets import GENERIC_READ, GENERIC_WRITE, PRESETS

PREFIX = "endpoint."


def preset_endpoint_names() -> set[str]:
    """Every endpoint name a preset (or the generic fallback) can give a request."""
    names = {e.name for table in PRESETS.values() for e in table}
    return names | {GENERIC_READ.name, GENERIC_WRITE.name}


def endpoint_label(t: Translator, name: str | None) -> str:
    """The endpoint in words, or its technical name when it has no label."""
    if not name:
        return ""
    return t.get(PREFIX + name) or name
