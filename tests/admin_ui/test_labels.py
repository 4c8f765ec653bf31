"""Words for ops staff: endpoint labels for every preset endpoint, breaker states in plain
language."""

from __future__ import annotations

import re

import pytest

from admin_ui.filters import parse
from admin_ui.i18n import LANGS, Translator, catalog
from admin_ui.labels import PREFIX, endpoint_by_label, endpoint_label, preset_endpoint_names
from proxy.bpjs.presets import PRESETS
from proxy.policies.breaker import BreakerState


def test_every_preset_endpoint_is_read_from_the_presets() -> None:
    names = preset_endpoint_names()
    assert {"antrean.updatewaktu", "vclaim.sep.insert", "aplicare.bed.update"} <= names
    # One name may cover several rules (vclaim.lpk: one per method).
    assert all(e.name in names for table in PRESETS.values() for e in table)
    assert {"read", "write"} <= names, "the generic fallback's names"


@pytest.mark.parametrize("lang", LANGS)
def test_every_preset_endpoint_has_a_label(lang: str) -> None:
    messages = catalog(lang)
    missing = sorted(n for n in preset_endpoint_names() if PREFIX + n not in messages)
    assert missing == []
    for name in preset_endpoint_names():
        label = messages[PREFIX + name]
        assert label and label != name and not re.search(r"\w\.\w", label), name


def test_no_label_is_left_over_from_a_removed_endpoint() -> None:
    for lang in LANGS:
        labelled = {k.removeprefix(PREFIX) for k in catalog(lang) if k.startswith(PREFIX)}
        assert labelled == preset_endpoint_names(), lang


def test_endpoint_labels_and_the_fallback_for_custom_routes() -> None:
    t_id, t_en = Translator("id"), Translator("en")
    assert endpoint_label(t_id, "antrean.updatewaktu") == "Antrean: waktu tugas"
    assert endpoint_label(t_en, "antrean.updatewaktu") == "Antrean: task time"
    assert endpoint_label(t_id, "antrean.add") == "Antrean: tambah antrean"
    assert endpoint_label(t_id, "vclaim.sep.insert") == "VClaim: buat SEP"
    assert endpoint_label(t_id, "aplicare.bed.update") == "Aplicare: ketersediaan kamar"
    assert endpoint_label(t_id, "rs.custom.route") == "rs.custom.route"
    assert endpoint_label(t_id, None) == ""


@pytest.mark.parametrize(("state", "id_", "en"), [
    (BreakerState.CLOSED, "Koneksi ke BPJS: normal", "Connection to BPJS: normal"),
    (BreakerState.OPEN, "Koneksi ke BPJS: dihentikan sementara", "Connection to BPJS: paused"),
    (BreakerState.HALF_OPEN, "Koneksi ke BPJS: mencoba lagi", "Connection to BPJS: testing")])
def test_breaker_states_in_plain_words(state: BreakerState, id_: str, en: str) -> None:
    assert Translator("id")("breaker." + state.value) == id_
    assert Translator("en")("breaker." + state.value) == en


def test_no_circuit_jargon_on_the_dashboard() -> None:
    for lang in LANGS:
        shown = {k: v for k, v in catalog(lang).items()
                 if k.startswith(("dash.", "breaker.")) and k != "breaker.help"}
        assert not [k for k, v in shown.items() if "irkuit" in v or "ircuit" in v], lang


def test_no_label_says_endpoint() -> None:
    for lang in LANGS:
        assert [k for k, v in catalog(lang).items() if "endpoint" in v.lower()] == [], lang


def test_a_label_typed_into_the_endpoint_filter_means_its_endpoint() -> None:
    assert endpoint_by_label("Antrean: waktu tugas") == "antrean.updatewaktu"
    assert endpoint_by_label("  antrean: TASK time ") == "antrean.updatewaktu"
    assert endpoint_by_label("VClaim: buat SEP") == "vclaim.sep.insert"
    assert endpoint_by_label("vclaim.sep") is None, "a technical prefix stays as typed"
    form = parse({"endpoint": "Antrean: tambah antrean"}, ["antrean"])
    assert form.filter.endpoint == "antrean.add" and form.values["endpoint"] == "antrean.add"
    assert parse({"endpoint": "vclaim.sep"}, ["antrean"]).filter.endpoint == "vclaim.sep"


@pytest.mark.parametrize("lang", LANGS)
def test_labels_are_unique(lang: str) -> None:
    labels = [v.casefold() for k, v in catalog(lang).items() if k.startswith(PREFIX)]
    assert len(labels) == len(set(labels))
