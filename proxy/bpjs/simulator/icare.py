"""iCare (reference §6.5): ``api/rs/validate`` answers an encrypted ``{"url": ...}``.

With ``icare_throttle_s`` > 0 a validate within that many seconds of the last accepted
one is refused with code 412 and the remaining wait as ``HH:MM:SS`` in the message, the
shape clients parse to schedule their retry. The window is global to the simulator (the
real limit's scope is unknown); the exact message text is invented.
"""

from __future__ import annotations

import hashlib
import math

from proxy.bpjs.simulator.answers import Answer, ok, refuse
from proxy.bpjs.simulator.routing import Call, Route, route
from proxy.bpjs.simulator.values import as_int, text

THROTTLED = 412
FORM_URL = "https://apijkn.bpjs-kesehatan.go.id/wsihs/form?token={token}"


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def validate(call: Call) -> Answer:
    doc = call.json_object()
    param, kodedokter = text(doc.get("param")), as_int(doc.get("kodedokter"))
    if not param or kodedokter is None:
        return refuse(201, "param (noKartu/NIK) dan kodedokter wajib diisi")
    window, last = call.settings.icare_throttle_s, call.records.icare_last_at
    if window > 0 and last is not None and call.now - last < window:
        wait = max(1, math.ceil(window - (call.now - last)))
        return refuse(THROTTLED, f"Permintaan terlalu sering. Silakan coba kembali setelah "
                                 f"{hms(wait)}", "throttled")
    call.records.icare_last_at = call.now
    token = hashlib.sha256(f"{param}|{kodedokter}|{call.now}".encode()).hexdigest()[:32]
    return ok({"url": FORM_URL.format(token=token)}, encrypt=True, message="Ok")


ROUTES: tuple[Route, ...] = (
    route("POST", "api/rs/validate", validate),
)
