"""Helpers that used to be written out in several modules, each now defined once: the
Jakarta time zone, the cons_id fallback, the path below an upstream's prefix, the
bearer-token check and the aiohttp app keys (HOUSE 6.3 habit 8, 6.4; issue 12 scope 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.config import UpstreamConfig
from proxy.delivery.upstream import cons_id_for
from proxy.tokens import bearer_matches

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"


@pytest.mark.parametrize("header", [
    f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"  Bearer   {TOKEN}  ",
])
def test_the_bearer_check_takes_the_scheme_in_any_case(header: str) -> None:
    assert bearer_matches(header, TOKEN)


@pytest.mark.parametrize("header", [
    None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer{TOKEN}",
    TOKEN, "Bearer s3cret-tok\udc80n",  # bytes that were not UTF-8: unequal, no error
])
def test_the_bearer_check_refuses_anything_else(header: str | None) -> None:
    assert not bearer_matches(header, TOKEN)


@pytest.mark.parametrize("token", [None, ""])
def test_no_configured_token_matches_no_header(token: str | None) -> None:
    assert not bearer_matches("Bearer ", token)
    assert not bearer_matches("Bearer None", token)


def test_the_configured_cons_id_wins_over_the_one_the_simrs_sent() -> None:
    configured = UpstreamConfig(name="a", prefix="/a", target="http://x", cons_id="111")
    passing = UpstreamConfig(name="b", prefix="/b", target="http://x")
    assert cons_id_for(configured, "222") == "111"
    assert cons_id_for(passing, "222") == "222"
    assert cons_id_for(passing, None) == ""


def test_the_path_below_the_prefix_keeps_its_raw_form() -> None:
    up = UpstreamConfig(name="a", prefix="/antreanrs", target="http://x")
    # Routing matches the prefix in any case; what follows is kept as sent.
    assert up.below_prefix("/AntreanRS/antrean/%41dd") == "/antrean/%41dd"
    assert up.below_prefix("/antreanrs") == ""


def test_the_jakarta_time_zone_is_defined_only_in_bpjs_service_day() -> None:
    definition = re.compile(r"timezone\(\s*timedelta\(\s*hours\s*=\s*7|Asia/Jakarta\"\)")
    found = sorted(str(path.relative_to(ROOT))
                   for folder in ("proxy", "admin_ui") for path in (ROOT / folder).rglob("*.py")
                   if definition.search(path.read_text(encoding="utf-8")))
    assert found == ["proxy/bpjs/service_day.py"]


def test_app_and_request_keys_are_declared_only_in_app_keys() -> None:
    # The simulator is an application of its own, with its own key beside its state.
    declaration = re.compile(r"\b(?:AppKey|RequestKey)\(")
    found = sorted(str(path.relative_to(ROOT))
                   for folder in ("proxy", "admin_ui") for path in (ROOT / folder).rglob("*.py")
                   if declaration.search(path.read_text(encoding="utf-8")))
    assert found == ["proxy/app_keys.py", "proxy/bpjs/simulator/state.py"]
