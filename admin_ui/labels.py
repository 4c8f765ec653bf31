"""Names ops staff read: what an endpoint does ("Antrean: waktu tugas"), not its rule
name (``antrean.updatewaktu``).

The labels live in the locale catalogs as ``endpoint.<name>``; a test keeps one there for
every endpoint of every preset (``proxy.bpjs.presets``), so a new preset endpoint cannot
ship without one. A custom route's own name has no label and is shown as it is.
"""

from __future__ import annotations

from admin_ui.i18n import LANGS, Translator
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


def endpoint_by_label(text: str) -> str | None:
    """The endpoint whose label (in any language) is ``text``, ignoring case: what staff
    type into the endpoint filter when they go by the words on the page."""
    wanted = text.strip().casefold()
    for lang in LANGS:
        t = Translator(lang)
        for name in preset_endpoint_names():
            label = t.get(PREFIX + name)
            if label is not None and label.casefold() == wanted:
                return name
    return None
