"""What Tenang knows about each BPJS endpoint, per service (bpjs-reference.md §6).

An ``Endpoint`` says how one method + path pattern behaves: read or write, the delivery
mode it should get, whether its ``response`` is encrypted, which body fields order it
behind earlier requests (Antrean: ``kodebooking``), its natural dedup key, whether it is
bound to the service day, and which rejection messages mean "retry later" (task-id
ordering) rather than "never". Config routes may override any field (``resolve``).

Patterns are paths below the upstream prefix, matched case-insensitively: ``{name}``
matches one segment, ``**`` matches the rest (possibly nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Mode(StrEnum):
    QUEUE = "queue"  # persist, answer 202 at once, deliver in the background
    DEADLINE = "deadline"  # persist, try live within deadline_ms, else queue
    PASSTHROUGH = "passthrough"  # reads: live with the breaker, fail fast


END_OF_SERVICE_DAY = "end-of-service-day"
EXPIRY_RULES = ("", END_OF_SERVICE_DAY)
ACK_ACCEPTED = "accepted"  # HTTP 202 with the service's envelope, code 202
ACK_BPJS_OK = "bpjs-ok"  # exactly what BPJS answers a successful data-less write
ACK_STYLES = (ACK_ACCEPTED, ACK_BPJS_OK)
DEFAULT_DEADLINE_MS = 8_000


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    method: str  # upper case, several as "POST|PUT", or "*" for any
    pattern: str
    write: bool
    mode: Mode
    encrypted: bool = False
    ordering_key: tuple[str, ...] = ()
    dedup_key: tuple[str, ...] = ()
    expires: str = ""
    # Rejections that name a missing predecessor: retried (without tripping the breaker)
    # until the predecessor lands, instead of failing for good.
    retryable_messages: tuple[str, ...] = ()
    deadline_ms: int = DEFAULT_DEADLINE_MS
    ack: str = ACK_ACCEPTED
    cache_ttl_s: float = 0.0
    coalesce_key: tuple[str, ...] = ()
    # The real success answer carries nothing the SIMRS needs (ack "bpjs-ok" allowed).
    data_less: bool = False
    # Sending twice creates a second record (a second SEP): an ambiguous outcome is
    # settled by this reconciliation read (proxy/delivery/reconcile.py), or held for a person.
    reconcile: str = ""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    methods: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_pattern(self.pattern))
        object.__setattr__(self, "methods", frozenset(self.method.split("|")))

    def matches(self, method: str, path: str) -> bool:
        return ("*" in self.methods or method.upper() in self.methods) and \
            bool(self.regex.fullmatch(path))


def compile_pattern(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            parts.append("(?:/.*)?")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append("/[^/]+")
        else:
            parts.append("/" + re.escape(segment))
    return re.compile("".join(parts) + "/?", re.IGNORECASE)


def _read(name: str, pattern: str, *, encrypted: bool = True, method: str = "GET") -> Endpoint:
    return Endpoint(name, method, pattern, write=False, mode=Mode.PASSTHROUGH,
                    encrypted=encrypted)


def _write(name: str, method: str, pattern: str, mode: Mode = Mode.QUEUE,
           **extra: object) -> Endpoint:
    return Endpoint(name, method, pattern, write=True, mode=mode, **extra)  # type: ignore[arg-type]


# The booking may reach BPJS another way (Mobile JKN) a little later: retry, not fail.
_TASK_ORDER = (r"sebelumnya belum terkirim", r"TaskId=\d+ belum ada", r"belum ada",
               r"belum terdaftar")
_BOOKING = ("kodebooking",)
_ROOM = ("kodekelas", "koderuang")

VCLAIM: tuple[Endpoint, ...] = (
    _write("vclaim.sep.insert", "POST", "SEP/{version}/insert", Mode.DEADLINE, encrypted=True,
           expires=END_OF_SERVICE_DAY, reconcile="sep-insert"),
    _write("vclaim.sep.update", "PUT", "SEP/{version}/update"),
    _write("vclaim.sep.delete", "DELETE", "SEP/{version}/delete"),
    _write("vclaim.sep.updtglplg", "PUT", "SEP/{version}/updtglplg"),
    _write("vclaim.sep.internal.delete", "DELETE", "SEP/Internal/delete"),
    _read("vclaim.sep.cbg", "sep/cbg/{noSep}", encrypted=False),
    _read("vclaim.sep.get", "SEP/{noSep}"),
    _write("vclaim.rujukan.insert", "POST", "Rujukan/{version}/insert", Mode.DEADLINE,
           encrypted=True, reconcile="manual"),
    _write("vclaim.rujukan.update", "PUT", "Rujukan/{version}/Update"),
    _write("vclaim.rujukan.delete", "DELETE", "Rujukan/delete"),
    _write("vclaim.rencanakontrol.insert", "POST", "RencanaKontrol/{version}/Insert",
           Mode.DEADLINE, encrypted=True, reconcile="manual"),
    _write("vclaim.rencanakontrol.insertspri", "POST", "RencanaKontrol/InsertSPRI",
           Mode.DEADLINE, encrypted=True, reconcile="manual"),
    _write("vclaim.rencanakontrol.update", "PUT", "RencanaKontrol/**"),
    _write("vclaim.rencanakontrol.delete", "DELETE", "RencanaKontrol/Delete"),
    # LPK/insert (POST), LPK/update (PUT), LPK/delete (DELETE); LPK/TglMasuk/... reads.
    _write("vclaim.lpk", "POST|PUT|DELETE", "LPK/{action}"),
    _read("vclaim.peserta", "Peserta/**"),
    _read("vclaim.rujukan", "Rujukan/**"),
    _read("vclaim.referensi", "referensi/**"),
    _read("vclaim.monitoring", "Monitoring/**"),
    _read("vclaim.read", "**"),
)

ANTREAN: tuple[Endpoint, ...] = (
    _write("antrean.add", "POST", "antrean/add", ordering_key=_BOOKING, dedup_key=_BOOKING,
           expires=END_OF_SERVICE_DAY, data_less=True),
    _write("antrean.updatewaktu", "POST", "antrean/updatewaktu", ordering_key=_BOOKING,
           dedup_key=("kodebooking", "taskid"), expires=END_OF_SERVICE_DAY,
           retryable_messages=_TASK_ORDER, data_less=True),
    _write("antrean.batal", "POST", "antrean/batal", ordering_key=_BOOKING,
           dedup_key=_BOOKING, expires=END_OF_SERVICE_DAY, data_less=True),
    _write("antrean.farmasi.add", "POST", "antrean/farmasi/add", ordering_key=_BOOKING,
           expires=END_OF_SERVICE_DAY, data_less=True),
    _write("antrean.jadwaldokter.update", "POST", "jadwaldokter/updatejadwaldokter",
           data_less=True),
    _read("antrean.getlisttask", "antrean/getlisttask", method="POST"),
    _read("antrean.dashboard", "dashboard/**", encrypted=False),
    _read("antrean.read", "**"),
)

APLICARE: tuple[Endpoint, ...] = (
    # The catalogue says POST; mLITE's wrapper sends PUT to update and DELETE to delete.
    _write("aplicare.bed.update", "POST|PUT", "rest/bed/update/{kodeppk}",
           coalesce_key=_ROOM, ordering_key=_ROOM, data_less=True),
    _write("aplicare.bed.create", "POST", "rest/bed/create/{kodeppk}"),
    _write("aplicare.bed.delete", "POST|DELETE", "rest/bed/delete/{kodeppk}"),
    _read("aplicare.read", "**", encrypted=False),
)

ICARE: tuple[Endpoint, ...] = (
    _read("icare.validate", "api/{kind}/validate", method="POST"),
    _read("icare.read", "**"),
)

# Outside a known service Tenang behaves as the core proxy always did: queue writes.
GENERIC_WRITE = Endpoint("write", "*", "**", write=True, mode=Mode.QUEUE)
GENERIC_READ = Endpoint("read", "GET", "**", write=False, mode=Mode.QUEUE)

PRESETS: dict[str, tuple[Endpoint, ...]] = {
    "vclaim": VCLAIM, "antrean": ANTREAN, "aplicare": APLICARE, "icare": ICARE,
    "generic": (),
}

# Methods accepted on paths no endpoint declares (``upstreams.methods`` replaces them).
# BPJS services use these four; TRACE, PROPFIND and the like would be queued and
# replayed re-signed with the hospital's secret.
BPJS_METHODS = ("GET", "POST", "PUT", "DELETE")
GENERIC_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def default_methods(preset: str) -> tuple[str, ...]:
    return GENERIC_METHODS if preset == "generic" else BPJS_METHODS


# Request headers an upstream gets (lower-case); everything else a SIMRS sends (its PHP
# session Cookie, X-Api-Key, X-Original-URL, X-Forwarded-Host) stays at Tenang.
# ``upstreams.forward_headers`` adds to these. BPJS: the signature set, user_key in the
# spellings clients use, and content negotiation; and the SIMRS's User-Agent, which
# BPJS (and any firewall before it) saw before Tenang stood in between (the HTTP client
# adds none of its own).
BPJS_HEADERS = frozenset({
    "x-cons-id", "x-timestamp", "x-signature", "user_key", "user-key", "userkey",
    "x-user-key", "content-type", "accept", "user-agent",
})
# An API Tenang knows nothing about: the BPJS set (generic upstreams in front of BPJS
# look-alikes), plus the usual credentials and idempotency header of an HTTP API.
GENERIC_HEADERS = BPJS_HEADERS | {"authorization", "accept-language", "idempotency-key"}
# Never forwarded, even if configured: the HTTP client sets them for its own connection.
UNFORWARDABLE = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})


def forwarded_headers(preset: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    base = GENERIC_HEADERS if preset == "generic" else BPJS_HEADERS
    return base | {h.lower() for h in extra}


def _lookup(table: tuple[Endpoint, ...], method: str, path: str) -> Endpoint | None:
    return next((e for e in table if e.matches(method, path)), None)


def builtin(preset: str, method: str, path: str) -> Endpoint:
    """The preset's rule for ``method path`` (path below the upstream prefix)."""
    found = _lookup(PRESETS[preset], method, path)
    if found is not None:
        return found
    return GENERIC_READ if method.upper() in ("GET", "HEAD") else GENERIC_WRITE


@dataclass(frozen=True, slots=True)
class Override:
    """A config route: the fields it sets replace the preset's (empty means unset)."""

    method: str
    pattern: str
    name: str = ""
    mode: Mode | None = None
    encrypted: bool | None = None
    ordering_key: tuple[str, ...] | None = None
    dedup_key: tuple[str, ...] | None = None
    expires: str | None = None
    deadline_ms: int | None = None
    ack: str | None = None
    cache_ttl_s: float | None = None
    coalesce_key: tuple[str, ...] | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_pattern(self.pattern))

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and bool(self.regex.fullmatch(path))

    def apply(self, base: Endpoint) -> Endpoint:
        changes = {k: v for k, v in (
            ("mode", self.mode), ("encrypted", self.encrypted),
            ("ordering_key", self.ordering_key), ("dedup_key", self.dedup_key),
            ("expires", self.expires), ("deadline_ms", self.deadline_ms), ("ack", self.ack),
            ("cache_ttl_s", self.cache_ttl_s), ("coalesce_key", self.coalesce_key),
        ) if v is not None}
        if self.mode is not None:
            changes["write"] = self.mode is not Mode.PASSTHROUGH
        return replace(base, name=self.name or base.name, **changes)  # type: ignore[arg-type]


def resolve(preset: str, overrides: tuple[Override, ...], method: str, path: str) -> Endpoint:
    """The rule for a request: the first matching config route over the preset's rule."""
    base = builtin(preset, method, path)
    for override in overrides:
        if override.matches(method, path):
            return override.apply(base)
    return base


def refused_method(preset: str, overrides: tuple[Override, ...], accepted: tuple[str, ...],
                   method: str, path: str) -> tuple[str, ...] | None:
    """None when ``method`` may be used on ``path``; else the methods that may (Allow).

    A path that one of the preset's writes names exactly (no ``**``) takes only the
    methods its endpoints declare (``GET antrean/add`` is not a read); any other path
    takes ``accepted``. A config route naming a method allows it on its pattern."""
    wanted = method.upper()
    named = {o.method for o in overrides if o.method != "*" and o.regex.fullmatch(path)}
    if wanted in named:
        return None
    exact = [e for e in PRESETS[preset] if "**" not in e.pattern and e.regex.fullmatch(path)]
    if any(e.write for e in exact):
        declared: set[str] = set().union(*(e.methods for e in exact))
    else:
        declared = set(accepted)
    return None if wanted in declared else tuple(sorted(declared | named))


def orders_requests(preset: str, overrides: tuple[Override, ...]) -> bool:
    """Whether any rule of this upstream orders requests by a key."""
    return any(e.ordering_key for e in PRESETS[preset]) or any(
        o.ordering_key for o in overrides)


def sample_path(pattern: str) -> str:
    """A concrete path the pattern matches, to look up the preset rule it overrides."""
    parts = [("x" if s.startswith("{") else s) for s in pattern.strip("/").split("/")
             if s != "**"]
    return "/" + "/".join(parts)


def parse_match(text: str) -> tuple[str, str]:
    """``"POST antrean/add"`` -> ("POST", "antrean/add"); a bare path means any method."""
    method, _, pattern = text.strip().partition(" ")
    if not pattern:
        return "*", method
    return method.upper(), pattern.strip()
