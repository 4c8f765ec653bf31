"""The one signature on callbacks and webhook notifications (proxy.signing), and the
receiver's example in the README: both accept what Tenang signs and refuse the rest."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy import signing

T0 = 1_750_000_000.0
SECRET = "hook-s3cret"
BODY = b'{"id":"x","text":"Antrean \xc3\xa9"}'
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_mac_is_hmac_sha256_over_time_dot_raw_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1750000000." + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, BODY, T0 + 0.9) == f"t=1750000000,v1={expected}"


def test_verify_accepts_within_the_tolerance_either_way() -> None:
    header = signing.sign(SECRET, BODY, T0)
    assert signing.verify(SECRET, header, BODY, now=T0 + signing.TOLERANCE_S)
    assert signing.verify(SECRET, header, BODY, now=T0 - signing.TOLERANCE_S)  # clock ahead


@pytest.mark.parametrize(("header", "body", "now", "secret"), [
    ("good", BODY + b" ", T0, SECRET),  # a tampered body
    ("good", BODY, T0 + 301, SECRET),  # a stale time: a replay
    ("good", BODY, T0 - 301, SECRET),
    ("good", BODY, T0, "other secret"),
    ("v1=abc", BODY, T0, SECRET),
    ("", BODY, T0, SECRET),
    ("t=1750000000", BODY, T0, SECRET),
    ("t=\u00b2,v1=00", BODY, T0, SECRET),  # a digit int() refuses
    ("t=1750000000,v1=\u00e9\ud800", BODY, T0, SECRET),  # not ASCII, not even UTF-8
    ("t=-1750000000,v1=00", BODY, T0, SECRET),
])
def test_verify_refuses(header: str, body: bytes, now: float, secret: str) -> None:
    if header == "good":
        header = signing.sign(SECRET, BODY, T0)
    assert not signing.verify(secret, header, body, now)


def readme_verify() -> Callable[..., bool]:
    """The receiver's example from the README's "Signed POSTs" section, as printed."""
    text = README.read_text("utf-8")
    section = text[text.index("### Signed POSTs"):]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)[:1]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    verify = namespace["verify"]
    assert callable(verify)
    return verify


def test_the_readme_example_verifies_what_tenang_signs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    verify = readme_verify()
    header = signing.sign(SECRET, BODY, T0)
    monkeypatch.setattr("time.time", lambda: T0 + 10)
    assert verify(SECRET, header, BODY)
    assert not verify(SECRET, header, BODY + b" ")
    monkeypatch.setattr("time.time", lambda: T0 + 301)
    assert not verify(SECRET, header, BODY)
