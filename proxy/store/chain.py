"""The hash chain that makes the stored history tamper-evident (issue 14, scope 1): its
canonical encoding, its links, and the check of one stretch of it. Pure: no I/O, no
clock, no backend; every backend (SQLite, memory, PostgreSQL later) builds the same
bytes from the same record, so a chain verifies the same wherever it is stored.

What joins the chain: every stored request, every delivery attempt, every state change
of a request and every audit-log entry, each as one entry (``Link``) of a ``kind``:

    kind      ref (the record's key)          fields encoded (``encode``)
    request   the request id                  id, upstream, method, path, query,
                                              headers, body, received_at, endpoint,
                                              ordering_key, expires_at, coalesce_key
    attempt   "<request id>/<number>"         request_id, number, started_at, duration_s,
                                              verdict, http_status, error, response_body
    state     the request id                  request_id, from, to, reason, at
    audit     the audit entry's id            id, at, actor, action, target, detail

A request's fields are the ones that never change once it is stored (its status, lease
and counters change, and each change of status is a ``state`` entry of its own). A
request starts pending (in_flight in deadline mode, leased for its live send): that
first state is the "from" of its first ``state`` entry, or its status if it never moved,
so storing a request adds one entry, not two. A ``state`` entry's record is kept with the
entry itself (``Link.record``): no other table holds the history of a request's states.

The canonical encoding of a record, for anyone re-implementing ``tenang audit verify``:

    JSON of one object {"kind": KIND, FIELD: VALUE, ...} with the fields above, keys
    sorted by code point, no whitespace (separators "," and ":"), ASCII only (every other
    character as a \\uXXXX escape, surrogate pairs beyond the BMP), UTF-8 bytes of that.
    Values: text as JSON strings; integers as JSON integers; times and durations (epoch
    seconds, floats) as the shortest decimal that reads back to the same IEEE double
    (Python's ``repr``, e.g. 1764590400.123456); absent values as null; byte strings
    (bodies) as standard base64 with padding; headers as an array of [name, value]
    arrays in the order they were stored; a state's "from" is null for the first state.
    Bodies are encoded as the plaintext Tenang received or BPJS answered, before any
    encryption at rest, so re-encrypting a store leaves its chain intact.

The chain itself:

    leaf  = SHA-256(canonical encoding of the record)
    head  = SHA-256(previous head || leaf)      (32 bytes each; before the first entry,
                                                 the previous head is 32 zero bytes)

Entries are numbered ``seq`` 1, 2, 3... with no gaps. A purged record keeps its entry
(``purged_at`` set), its tombstone: the entry's leaf is the purged record's hash, no
longer recomputed, and its head still links. Retention marks the request's entry and its
attempts' (``"<id>/<n>"``) in the transaction of the purge, whether it drops the bodies
(the row stays, its body empty, ``purged_at`` set) or deletes the rows. A tombstone
must match a purge that happened: over a record still stored in full (a body, or an
attempt of a request whose bodies were never dropped) it would hide a change to that
record, so verification reports it; state changes and audit entries are never purged,
so a tombstone over one of them is reported too. What a dropped body leaves of a
request (its path, headers, times) is no longer checked: the leaf covered the body.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import json.encoder as json_encoder
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from proxy.store.records import AttemptRecord, AuditEntry, NewRequest, StoredRequest

GENESIS = bytes(32)
HASH_SIZE = 32
# The reason of the state entry a take-over records: the request stays in flight, under
# a new lease holder, after its earlier one died mid-delivery.
TAKEN_OVER = "lease taken over"
# ``[audit] chain``: a store opened with the chain switched the other way than it last
# was appends one audit entry (actor SWITCH_ACTOR, target SWITCH_TARGET) with one of
# these actions, itself linked: the last entry before the gap, or the first after it.
SWITCH_ACTOR = "tenang"
SWITCH_TARGET = "chain"
SWITCHED_ON = "chain_on"
SWITCHED_OFF = "chain_off"


def switch_action(last: str | None, on: bool) -> str | None:
    """The switch entry's action to record as a store opens with the chain ``on`` (or
    off), after ``last``, the newest switch entry's action (None: there is none, and the
    chain was on, the default). None when nothing changed."""
    if (last is None or last == SWITCHED_ON) == on:
        return None
    return SWITCHED_ON if on else SWITCHED_OFF


def switch_detail(on: bool) -> str:
    return "[audit] chain = true" if on else "[audit] chain = false"


class Kind(StrEnum):
    REQUEST = "request"
    ATTEMPT = "attempt"
    STATE = "state"
    AUDIT = "audit"


class Link(NamedTuple):
    """An entry about to join the chain: the writer numbers and links it at commit. (A
    tuple, not a frozen dataclass: one is made per stored record, at a third the cost.)"""

    kind: Kind
    ref: str
    leaf: bytes
    record: bytes | None = None  # kept with the entry (state changes only)


@dataclass(frozen=True, slots=True)
class ChainEntry:
    seq: int
    kind: Kind
    ref: str
    leaf: bytes
    head: bytes
    purged_at: float | None = None
    record: bytes | None = None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the chain ends: 0 and ``GENESIS`` while it is empty."""

    seq: int
    head: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A head someone wrote down (``tenang audit checkpoint``), to verify from later."""

    seq: int
    head: bytes
    at: float
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Break:
    """The first entry that does not check out, and why."""

    seq: int
    kind: str  # a ``Kind``, or "chain" when the chain itself is damaged
    ref: str
    problem: str

    def describe(self) -> str:
        what = f"{self.kind} {self.ref}" if self.ref else self.kind
        return f"seq {self.seq}: {what}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Verification:
    """One run of ``tenang audit verify`` (or the UI's button), as recorded."""

    at: float
    ok: bool
    head_seq: int  # the last entry checked
    checked: int  # entries checked in this run
    from_seq: int = 0  # 0: from the start; else the checkpoint's seq
    broken: Break | None = None


_ENCODER = json.JSONEncoder(ensure_ascii=True, sort_keys=True, separators=(",", ":"),
                            allow_nan=False)
# The record-specific encodings below write the reference's bytes directly (keys in
# sorted order, each value as the reference encoder writes it): they are on the intake
# path, where building a dict and walking it costs about as much again.
# tests/unit/test_chain_encoding.py holds every one of them to ``encode``.
_IN_ORDER = json.JSONEncoder(ensure_ascii=True, sort_keys=False, separators=(",", ":"),
                             allow_nan=False)
# JSONEncoder.encode builds its C encoder anew on every call; built once here it costs
# half. Same options, same bytes.
_MAKE_C_ENCODER = getattr(json_encoder, "c_make_encoder", None)
_C_ENCODER = None if _MAKE_C_ENCODER is None else _MAKE_C_ENCODER(
    None, _IN_ORDER.default, json_encoder.encode_basestring_ascii, None, ":", ",", False,
    False, False)
_quoted = json_encoder.encode_basestring_ascii  # a JSON string, ASCII, as the encoders write


def _value(v: Any) -> str:
    """Any value exactly as the reference encoder writes it (the general case)."""
    if _C_ENCODER is None:
        return _IN_ORDER.encode(v)
    return "".join(_C_ENCODER(v, 0))


def _text(v: str | None) -> str:
    if type(v) is str:
        return _quoted(v)
    return "null" if v is None else _value(v)


def _number(v: float | int | None) -> str:
    if type(v) is float and v - v == 0.0:  # finite: NaN and infinities are refused
        return float.__repr__(v)  # the shortest repr, as the reference writes floats
    if type(v) is int:
        return int.__repr__(v)
    return "null" if v is None else _value(v)


def _b64(data: bytes | None) -> str:
    # The base64 alphabet needs no escape: quoted as it is. (binascii: base64.b64encode
    # is a Python wrapper around it.)
    if data is None:
        return "null"
    return '"' + binascii.b2a_base64(data, newline=False).decode("ascii") + '"'


# A request's deadline (``expires_at``) is its service day's end, shared by every request
# of the day: its repr (with ``received_at``'s, the slowest part of the encoding) is kept.
# Never for 0.0, which equals -0.0 but is written otherwise.
_last_time: tuple[float, str] = (float("nan"), "")


def _repeated_number(v: float | int | None) -> str:
    global _last_time
    if type(v) is float and v == _last_time[0] and v != 0.0:
        return _last_time[1]
    encoded = _number(v)
    if type(v) is float:
        _last_time = (v, encoded)
    return encoded


# Stored headers repeat (content type, cons id, user key; one timestamp and signature per
# second and caller): each [name, value] pair's encoding is kept, up to a bound.
_PAIRS: dict[tuple[str, str], str] = {}
_PAIRS_MAX = 4096


# Whole header sets repeat too (one per caller and second): kept as rows.py keeps their
# JSON, up to a bound.
_SETS: dict[tuple[tuple[str, str], ...], str] = {}
_SETS_MAX = 256


def _headers(headers: Sequence[tuple[str, str]]) -> str:
    if type(headers) is tuple:
        encoded = _SETS.get(headers)
        if encoded is None:
            if len(_SETS) >= _SETS_MAX:
                _SETS.clear()
            encoded = _SETS[headers] = _header_pairs(headers)
        return encoded
    return _header_pairs(headers)


def _header_pairs(headers: Sequence[tuple[str, str]]) -> str:
    out = []
    for pair in headers:
        encoded = _PAIRS.get(pair) if type(pair) is tuple else None
        if encoded is None:
            encoded = _value(pair)
            if type(pair) is tuple:
                if len(_PAIRS) >= _PAIRS_MAX:
                    _PAIRS.clear()
                _PAIRS[pair] = encoded
        out.append(encoded)
    return "[" + ",".join(out) + "]"


def encode(kind: Kind, fields: Mapping[str, Any]) -> bytes:
    """The canonical encoding of a record (see the module's docstring): the reference
    the record-specific encodings below must equal."""
    return _ENCODER.encode({"kind": kind.value, **fields}).encode("ascii")


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def linked(previous: bytes, leaf: bytes) -> bytes:
    """The head after ``leaf`` joins a chain ending in ``previous``."""
    return hashlib.sha256(previous + leaf).digest()


def request_encoding(r: NewRequest | StoredRequest) -> bytes:
    # Keys in sorted order; headers as stored, a sequence of pairs (JSON arrays).
    return (f'{{"body":{_b64(r.body)},"coalesce_key":{_text(r.coalesce_key)},'
            f'"endpoint":{_text(r.endpoint)},"expires_at":{_repeated_number(r.expires_at)},'
            f'"headers":{_headers(r.headers)},"id":{_text(r.id)},"kind":"request",'
            f'"method":{_text(r.method)},"ordering_key":{_text(r.ordering_key)},'
            f'"path":{_text(r.path)},"query":{_text(r.query)},'
            f'"received_at":{_number(r.received_at)},"upstream":{_text(r.upstream)}}}'
            ).encode("ascii")


def attempt_ref(request_id: str, number: int) -> str:
    return f"{request_id}/{number}"


def attempt_encoding(request_id: str, a: AttemptRecord) -> bytes:
    return (f'{{"duration_s":{_number(a.duration_s)},"error":{_text(a.error)},'
            f'"http_status":{_number(a.http_status)},"kind":"attempt",'
            f'"number":{_number(a.number)},"request_id":{_text(request_id)},'
            f'"response_body":{_b64(a.response_body)},"started_at":{_number(a.started_at)},'
            f'"verdict":{_text(a.verdict.value)}}}').encode("ascii")


def state_encoding(request_id: str, before: str | None, after: str, reason: str | None,
                   at: float) -> bytes:
    return (f'{{"at":{_number(at)},"from":{_text(before)},"kind":"state",'
            f'"reason":{_text(reason)},"request_id":{_text(request_id)},'
            f'"to":{_text(after)}}}').encode("ascii")


def audit_encoding(e: AuditEntry) -> bytes:
    return (f'{{"action":{_text(e.action)},"actor":{_text(e.actor)},"at":{_number(e.at)},'
            f'"detail":{_text(e.detail)},"id":{_number(e.id)},"kind":"audit",'
            f'"target":{_text(e.target)}}}').encode("ascii")


_new_link = tuple.__new__  # Link(...) runs NamedTuple's __new__ in Python: a third slower


def request_link(r: NewRequest | StoredRequest) -> Link:
    return _new_link(Link, (Kind.REQUEST, r.id, hashlib.sha256(request_encoding(r)).digest(),
                            None))


def attempt_link(request_id: str, a: AttemptRecord) -> Link:
    return Link(Kind.ATTEMPT, attempt_ref(request_id, a.number),
                digest(attempt_encoding(request_id, a)))


def state_link(request_id: str, before: str | None, after: str, reason: str | None,
               at: float) -> Link:
    record = state_encoding(request_id, before, after, reason, at)
    return Link(Kind.STATE, request_id, digest(record), record)


def state_links(request_ids: Iterable[str], before: str | None, after: str,
                reason: str | None, at: float) -> list[Link]:
    """One state change per request (``before`` -> ``after``), in id order, as every
    backend adds them: the same moves, the same chain."""
    return [state_link(rid, before, after, reason, at) for rid in sorted(request_ids)]


def audit_link(e: AuditEntry) -> Link:
    return Link(Kind.AUDIT, str(e.id), digest(audit_encoding(e)))


def extend(head: ChainHead, links: Iterable[Link]) -> list[ChainEntry]:
    """``links`` numbered and linked after ``head``, in order."""
    return [ChainEntry(seq, Kind(kind), ref, leaf, h, record=record)
            for seq, kind, ref, leaf, h, record in extend_rows(head, links)]


# A kind as plain text: a driver binds a str subclass (the enum) by the slow path of
# adapting it (sqlite3: about 0.4 us more per row).
_KIND_TEXT = {k: k.value for k in Kind}


def extend_rows(head: ChainHead, links: Iterable[Link]
                ) -> list[tuple[int, str, str, bytes, bytes, bytes | None]]:
    """``extend`` as plain rows (seq, kind, ref, leaf, head, record), the kind as its
    text: what a writer inserts at commit, with nothing built it does not insert."""
    seq, previous = head.seq, head.head
    out = []
    sha256 = hashlib.sha256
    text = _KIND_TEXT
    for kind, ref, leaf, record in links:
        seq += 1
        previous = sha256(previous + leaf).digest()
        out.append((seq, text[kind], ref, leaf, previous, record))
    return out


def parse_hash(text: str) -> bytes:
    """A head as written by ``tenang audit checkpoint`` (64 hex digits); ValueError else."""
    value = bytes.fromhex(text.strip())
    if len(value) != HASH_SIZE:
        raise ValueError("a chain hash is 64 hex digits")
    return value


# What retention purges (their tombstones are checked against the store); the other
# kinds' records live as long as the chain (a state's record is its entry's own).
PURGEABLE = frozenset({Kind.REQUEST, Kind.ATTEMPT})


def request_leaf_now(entry: ChainEntry, r: StoredRequest | None) -> bytes | None:
    """What ``Walk.feed`` is given for a request's entry: the leaf of its row as stored
    now, None when there is none. For a tombstone, None also when the purge did happen
    here (the row is gone, or its body was dropped: ``purged_at`` set and the body
    empty); otherwise the row's leaf, which the walk reports (see the module's
    docstring)."""
    if r is None or (entry.purged_at is not None and r.purged_at is not None
                     and not r.body):
        return None
    return request_link(r).leaf


def attempt_leaf_now(entry: ChainEntry, a: AttemptRecord | None,
                     request: StoredRequest | None) -> bytes | None:
    """``request_leaf_now`` for an attempt's entry: ``a`` is the attempt as stored now,
    ``request`` its request's row (needed for a tombstone only: an attempt's answer was
    purged when its request's bodies were)."""
    if a is None:
        return None
    request_id = entry.ref.rpartition("/")[0]
    if entry.purged_at is not None and a.response_body is None and (
            request is None or request.purged_at is not None):
        return None
    return attempt_link(request_id, a).leaf


class Walk:
    """Checks entries fed in seq order from a trusted start (genesis or a checkpoint);
    constant memory. ``feed`` returns the first ``Break`` found, or None."""

    def __init__(self, start: ChainHead,
                 checkpoints: Mapping[int, bytes] | None = None) -> None:
        self.last = start
        self.checked = 0
        self._checkpoints = dict(checkpoints or {})

    def feed(self, entries: Sequence[ChainEntry],
             current: Sequence[bytes | None]) -> Break | None:
        """``current``: per entry, the leaf its record has now (None: no such record);
        for a tombstone, None when its record was purged (``request_leaf_now``)."""
        for entry, leaf in zip(entries, current, strict=True):
            expected_seq = self.last.seq + 1
            if entry.seq != expected_seq:
                return Break(expected_seq, "chain", "",
                             f"entry missing (the next entry is seq {entry.seq})")
            if linked(self.last.head, entry.leaf) != entry.head:
                return Break(entry.seq, entry.kind, entry.ref,
                             "head does not follow from the previous head and this leaf")
            wanted = self._checkpoints.get(entry.seq)
            if wanted is not None and wanted != entry.head:
                return Break(entry.seq, entry.kind, entry.ref,
                             "head differs from the checkpoint taken at this seq")
            if entry.purged_at is not None:
                if entry.kind not in PURGEABLE:
                    return Break(entry.seq, entry.kind, entry.ref,
                                 f"marked purged, but {entry.kind} entries are never purged")
                if leaf is not None:
                    return Break(entry.seq, entry.kind, entry.ref,
                                 "marked purged, but its record is still stored in full")
            else:
                if leaf is None:
                    return Break(entry.seq, entry.kind, entry.ref, "record missing")
                if leaf != entry.leaf:
                    return Break(entry.seq, entry.kind, entry.ref,
                                 "record changed since it was stored")
            self.last = ChainHead(entry.seq, entry.head)
            self.checked += 1
        return None

    def finish(self) -> Break | None:
        """After the last entry: a checkpoint beyond it means entries were cut off."""
        beyond = [seq for seq in self._checkpoints if seq > self.last.seq]
        if beyond:
            return Break(self.last.seq + 1, "chain", "",
                         f"chain ends at seq {self.last.seq}, before the checkpoint at "
                         f"seq {min(beyond)}")
        return None


def state_leaf_of(entry: ChainEntry) -> bytes | None:
    """A state entry's record is the entry's own: its leaf as it reads now."""
    return None if entry.record is None else digest(entry.record)


class LeafRefs(NamedTuple):
    """The records a page of entries names, by kind, for a backend to read in one query
    per kind (sorted, so a page reads the same whichever backend)."""

    attempt_of: list[str]  # request ids whose attempts an attempt entry names
    request_ids: list[str]  # requests' rows: a request entry's, an attempt tombstone's
    audit_ids: list[int]


def leaf_refs(entries: Iterable[ChainEntry]) -> LeafRefs:
    """What ``leaf_now`` needs read for ``entries``: every request entry's row (a
    tombstone's too, ``request_leaf_now``), every attempt entry's attempt and, for an
    attempt's tombstone, its request's row; every audit entry's row."""
    page = list(entries)
    attempt_of = {e.ref.rpartition("/")[0] for e in page if e.kind is Kind.ATTEMPT}
    request_ids = ({e.ref for e in page if e.kind is Kind.REQUEST}
                   | {e.ref.rpartition("/")[0] for e in page
                      if e.kind is Kind.ATTEMPT and e.purged_at is not None})
    audit_ids = {int(e.ref) for e in page if e.kind is Kind.AUDIT and e.ref.isdigit()}
    return LeafRefs(sorted(attempt_of), sorted(request_ids), sorted(audit_ids))


def leaf_now(entry: ChainEntry, *, unreadable: bytes, broken: set[str] | frozenset[str],
             requests: Mapping[str, StoredRequest], attempts: Mapping[str, AttemptRecord],
             audits: Mapping[str, bytes]) -> bytes | None:
    """What ``Walk.feed`` is given for any entry, from the records as stored now (read
    by the backend): ``unreadable`` for a request or attempt whose sealed value no longer
    opens (in ``broken``), so the walk names it as changed."""
    if entry.ref in broken and entry.kind in PURGEABLE:
        return unreadable
    if entry.kind is Kind.REQUEST:
        return request_leaf_now(entry, requests.get(entry.ref))
    if entry.kind is Kind.ATTEMPT:
        return attempt_leaf_now(entry, attempts.get(entry.ref),
                                requests.get(entry.ref.rpartition("/")[0]))
    if entry.kind is Kind.STATE:
        return state_leaf_of(entry)
    return audits.get(entry.ref)
