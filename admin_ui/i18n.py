"""Bahasa Indonesia (default) and English: message catalogs in ``locales/*.json``.

The language is a cookie the visitor sets with the switch in the page header; there is
no detection from the browser, because hospital PCs are often set to English while the
staff read Indonesian.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

LANGS = ("id", "en")
DEFAULT_LANG = "id"
LANG_COOKIE = "tenang_lang"


@cache
def catalog(lang: str) -> dict[str, str]:
    text = resources.files("admin_ui").joinpath("locales", f"{lang}.json").read_text("utf-8")
    data: dict[str, str] = json.loads(text)
    return data


def pick_lang(cookie: str | None) -> str:
    return cookie if cookie in LANGS else DEFAULT_LANG


class Translator:
    """``t("key", n=3)``: the message in the chosen language, formatted with ``str.format``.

    A key missing from a catalog shows the key itself (a test keeps the catalogs
    complete), so a gap never breaks a page.
    """

    def __init__(self, lang: str) -> None:
        self.lang = pick_lang(lang)
        self._messages = catalog(self.lang)

    def get(self, key: str) -> str | None:
        """The message for ``key``, or None when the catalog has none (no fallback)."""
        return self._messages.get(key)

    def __call__(self, key: str, **values: Any) -> str:
        message = self._messages.get(key, key)
        return message.format(**values) if values else message
