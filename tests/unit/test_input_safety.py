"""Unit cases for nasty input: key extraction (issue 10.3), method and header lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.bpjs.keys import UnkeyableBody, key_of, parse_json
from proxy.config import ConfigError
from proxy.delivery.reconcile import _visit
from tests.conftest import make_config

DEEP = b'{"request":{"t_sep":{"noKartu":"1","tglSep":"2025-01-01","jnsPelayanan":"2",' \
    b'"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}}}"


def test_parse_json_refuses_deep_nesting_with_a_reason() -> None:
    with pytest.raises(UnkeyableBody, match="nested too deeply"):
        parse_json(DEEP)
    assert parse_json(b"[" * 50 + b"]" * 50) is not None  # ordinary depth parses
    assert parse_json(b"\xff{") is None  # not JSON: not keyed, no error


def test_key_of_refuses_an_unpaired_surrogate_in_a_key_field_only() -> None:
    with pytest.raises(UnkeyableBody, match="'kodebooking'"):
        key_of(b'{"kodebooking":"\\udc00"}', ("kodebooking",))
    assert key_of(b'{"kodebooking":"KB1","nama":"\\ud800"}', ("kodebooking",)) == \
        "kodebooking=KB1"
    # A proper pair (an emoji written as escapes) is text.
    assert key_of(b'{"kodebooking":"\\ud83d\\ude00"}', ("kodebooking",)) == \
        "kodebooking=\U0001F600"


def test_reconciliation_reads_no_visit_from_a_body_it_cannot_parse() -> None:
    assert _visit(DEEP) is None
    assert _visit(b'{"request":{"t_sep":{"noKartu":"\\ud800","tglSep":"x",'
                  b'"jnsPelayanan":"1"}}}') is None


@pytest.mark.parametrize(("key", "value", "words"), [
    ("methods", ["GE T"], "not an HTTP method"),
    ("methods", "GET", "array of non-empty strings"),
    ("methods", [""], "array of non-empty strings"),
    ("forward_headers", ["X Bad"], "not a header name"),
    ("forward_headers", [1], "array of non-empty strings"),
])
def test_method_and_header_lists_are_checked(tmp_path: Path, key: str, value: object,
                                             words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        make_config(tmp_path, "http://127.0.0.1:1", **{key: value})


def test_method_lists_are_upper_cased(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, "http://127.0.0.1:1", methods=["get", "Post"])
    assert cfg.upstreams[0].methods == ("GET", "POST")
