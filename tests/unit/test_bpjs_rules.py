"""Endpoint presets, config overrides, body keys, the service day and readable results."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from proxy.bpjs import crypto, envelope, presets
from proxy.bpjs.keys import key_of
from proxy.bpjs.presets import Mode, Override, resolve
from proxy.bpjs.results import readable
from proxy.bpjs.service_day import WIB, end_of_service_day


@pytest.mark.parametrize(("preset", "method", "path", "name", "mode", "encrypted"), [
    ("vclaim", "POST", "/SEP/2.0/insert", "vclaim.sep.insert", Mode.DEADLINE, True),
    ("vclaim", "post", "/sep/2.0/INSERT", "vclaim.sep.insert", Mode.DEADLINE, True),
    ("vclaim", "PUT", "/SEP/2.0/update", "vclaim.sep.update", Mode.QUEUE, False),
    ("vclaim", "DELETE", "/SEP/2.0/delete", "vclaim.sep.delete", Mode.QUEUE, False),
    ("vclaim", "GET", "/SEP/0301R0011126V000001", "vclaim.sep.get", Mode.PASSTHROUGH, True),
    ("vclaim", "GET", "/sep/cbg/0301R0011126V000001", "vclaim.sep.cbg", Mode.PASSTHROUGH,
     False),
    ("vclaim", "GET", "/Peserta/nokartu/0001/tglSEP/2026-11-28", "vclaim.peserta",
     Mode.PASSTHROUGH, True),
    ("vclaim", "GET", "/referensi/poli/INT", "vclaim.referensi", Mode.PASSTHROUGH, True),
    ("vclaim", "POST", "/Unknown/thing", "write", Mode.QUEUE, False),
    ("antrean", "POST", "/antrean/updatewaktu", "antrean.updatewaktu", Mode.QUEUE, False),
    ("antrean", "POST", "/antrean/add/", "antrean.add", Mode.QUEUE, False),
    ("antrean", "GET", "/ref/poli", "antrean.read", Mode.PASSTHROUGH, True),
    ("antrean", "GET", "/dashboard/waktutunggu/bulan/11/tahun/2026/waktu/rs",
     "antrean.dashboard", Mode.PASSTHROUGH, False),
    ("aplicare", "POST", "/rest/bed/update/0301R001", "aplicare.bed.update", Mode.QUEUE,
     False),
    ("aplicare", "PUT", "/rest/bed/update/0301R001", "aplicare.bed.update", Mode.QUEUE, False),
    ("icare", "POST", "/api/rs/validate", "icare.validate", Mode.PASSTHROUGH, True),
    ("generic", "POST", "/anything", "write", Mode.QUEUE, False),
])
def test_preset_tables(preset: str, method: str, path: str, name: str, mode: Mode,
                       encrypted: bool) -> None:
    rule = resolve(preset, (), method, path)
    assert (rule.name, rule.mode, rule.encrypted) == (name, mode, encrypted)


def test_antrean_rules_carry_ordering_dedup_and_service_day() -> None:
    rule = resolve("antrean", (), "POST", "/antrean/updatewaktu")
    assert rule.ordering_key == ("kodebooking",)
    assert rule.dedup_key == ("kodebooking", "taskid")
    assert rule.expires == presets.END_OF_SERVICE_DAY
    assert any("sebelumnya belum terkirim" in m for m in rule.retryable_messages)
    assert presets.orders_requests("antrean", ())
    assert presets.orders_requests("aplicare", ())  # bed updates per room
    assert not presets.orders_requests("icare", ())


def test_config_route_overrides_only_the_fields_it_sets() -> None:
    override = Override(method="POST", pattern="antrean/updatewaktu", mode=Mode.DEADLINE,
                        expires="")
    rule = resolve("antrean", (override,), "POST", "/antrean/updatewaktu")
    assert rule.mode is Mode.DEADLINE and rule.expires == ""
    assert rule.ordering_key == ("kodebooking",)  # kept from the preset
    other = resolve("antrean", (override,), "POST", "/antrean/add")
    assert other.mode is Mode.QUEUE


def test_override_can_add_ordering_to_a_generic_upstream() -> None:
    override = Override(method="*", pattern="orders/**", name="orders",
                        ordering_key=("order_id",))
    rule = resolve("generic", (override,), "POST", "/orders/1/lines")
    assert (rule.name, rule.ordering_key) == ("orders", ("order_id",))
    assert presets.orders_requests("generic", (override,))


@pytest.mark.parametrize(("text", "expected"), [
    ("POST antrean/add", ("POST", "antrean/add")),
    ("get  referensi/**", ("GET", "referensi/**")),
    ("rest/bed/update/{ppk}", ("*", "rest/bed/update/{ppk}")),
])
def test_parse_match(text: str, expected: tuple[str, str]) -> None:
    assert presets.parse_match(text) == expected


def test_keys_from_top_level_and_vclaim_request_wrapper() -> None:
    assert key_of(b'{"kodebooking": "KB1", "taskid": 3}', ("kodebooking", "taskid")) \
        == "kodebooking=KB1&taskid=3"
    wrapped = b'{"request": {"t_sep": {"noKartu": "0001", "tglSep": "2026-11-28"}}}'
    assert key_of(wrapped, ("noKartu", "tglSep")) == "noKartu=0001&tglSep=2026-11-28"


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"taskid": 3}',
                                  b'{"kodebooking": {"x": 1}}'])
def test_unkeyable_bodies_get_no_key(body: bytes) -> None:
    assert key_of(body, ("kodebooking",)) is None


def test_service_day_ends_at_midnight_jakarta() -> None:
    late_evening = datetime(2026, 11, 28, 23, 59, 30, tzinfo=WIB).timestamp()
    early_morning = datetime(2026, 11, 28, 0, 0, 0, tzinfo=WIB).timestamp()
    midnight = datetime(2026, 11, 29, 0, 0, 0, tzinfo=WIB).timestamp()
    assert end_of_service_day(late_evening) == midnight
    assert end_of_service_day(early_morning) == midnight
    assert end_of_service_day(midnight) == midnight + 86400
    # 17:00 UTC is already the next day in Jakarta.
    assert end_of_service_day(datetime.fromisoformat("2026-11-28T17:00:00+00:00")
                              .timestamp()) == midnight + 86400


def test_envelope_spellings_and_code_types() -> None:
    env = envelope.parse(b'{"metaData": {"code": "200", "message": "OK"}, "response": "x"}')
    assert env is not None and (env.key, env.code, env.response) == ("metaData", "200", "x")
    env = envelope.parse(b'{"metadata": {"code": 1, "message": null}}')
    assert env is not None and (env.code, env.message, env.response) == ("1", "", None)
    assert envelope.parse(b"<html>503</html>") is None
    assert envelope.parse(b'{"metadata": {"code": true}}') is None


def test_readable_result_replaces_the_ciphertext_with_the_plain_value() -> None:
    wire = crypto.encrypt_response({"sep": {"noSep": "0301R0011126V000001"}}, "1", "s", "99")
    body = json.dumps({"metaData": {"code": "200", "message": "Sukses"}, "response": wire})
    out = readable(body.encode(), encrypted=True, cons_id="1", secret="s", timestamp="99")
    assert out.decrypt_error is None
    assert json.loads(out.body) == {"metaData": {"code": "200", "message": "Sukses"},
                                    "response": {"sep": {"noSep": "0301R0011126V000001"}}}
    wrong = readable(body.encode(), encrypted=True, cons_id="1", secret="s", timestamp="98")
    assert wrong.body == body.encode() and wrong.decrypt_error
    nosecret = readable(body.encode(), encrypted=True, cons_id="1", secret=None,
                        timestamp="99")
    assert nosecret.decrypt_error and "no secret" in nosecret.decrypt_error
    plain = readable(body.encode(), encrypted=False, cons_id="1", secret="s", timestamp="99")
    assert plain.body == body.encode() and plain.decrypt_error is None
