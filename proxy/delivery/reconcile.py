"""Reconciliation reads: after a send on a non-idempotent route went unanswered (or was
refused as a duplicate), ask BPJS whether it already holds the record instead of
sending it again (bpjs-reference.md §5.3, §6.1).

Only ``sep-insert`` can be settled automatically: the patient's service history for the
SEP date names every SEP issued, and one with the same card, date, service type and
referral is this visit's. Other non-idempotent routes ("manual") always need a person.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from proxy.bpjs import envelope as bpjs_envelope
from proxy.bpjs.keys import UnkeyableBody, key_of, parse_json
from proxy.bpjs.results import readable
from proxy.config import UpstreamConfig
from proxy.delivery.upstream import Reply, signed_read, stored_cons_id
from proxy.lifecycle import Settlement, Verdict
from proxy.policies.classify import classify_error, classify_response
from proxy.store.records import StoredRequest

log = logging.getLogger("tenang.reconcile")

SEP_INSERT = "sep-insert"
# VClaim refuses a second same-day SEP naming the one that exists ("... Dgn No.SEP X").
EXISTING_SEP = re.compile(r"No\.?\s*SEP\s+(\S+)", re.IGNORECASE)
_FIELDS = ("noKartu", "tglSep", "jnsPelayanan")


@dataclass(frozen=True, slots=True)
class Finding:
    settlement: Settlement
    detail: str  # what was looked at and found, for the request's reason
    result: bytes | None = None  # the envelope to store as the request's result
    # The read's answer, for the breaker and the backoff (None: no read was made).
    http_status: int | None = None
    trips_breaker: bool = False
    retry_after_s: float | None = None


def _visit(body: bytes) -> dict[str, Any] | None:
    """The card, date, service type and referral of a SEP insert body."""
    try:
        t_sep = parse_json(body)["request"]["t_sep"]
        if not isinstance(t_sep, dict) or key_of(body, _FIELDS) is None:
            return None
    except (UnkeyableBody, KeyError, TypeError):  # too deep, not text: no visit to find
        return None
    rujukan = t_sep.get("rujukan")
    if not isinstance(rujukan, dict):
        rujukan = {}
    return {"noKartu": str(t_sep["noKartu"]), "tglSep": str(t_sep["tglSep"]),
            "jnsPelayanan": str(t_sep["jnsPelayanan"]),
            "noRujukan": str(rujukan.get("noRujukan") or "")}


def _same_visit(item: Any, visit: dict[str, Any]) -> bool:
    if not isinstance(item, dict):
        return False
    same = all(str(item.get(k, "")) == visit[k] for k in _FIELDS)
    referral = str(item.get("noRujukan") or "")
    return same and (not visit["noRujukan"] or not referral or referral == visit["noRujukan"])


class Reconciler:
    def __init__(self, upstream: UpstreamConfig, session: aiohttp.ClientSession,
                 clock: Callable[[], float]) -> None:
        self.upstream = upstream
        self.session = session
        self.clock = clock

    def without_reading(self, kind: str, request: StoredRequest) -> Finding | None:
        """What is settled with no read at all (a person must look), or None when a
        history read can tell."""
        if kind != SEP_INSERT:
            return Finding(Settlement.UNKNOWN, "this kind of request needs a person to check")
        if _visit(request.body) is None:
            return Finding(Settlement.UNKNOWN, "the SEP request names no card/date/service")
        if not self.upstream.secret:
            return Finding(Settlement.UNKNOWN, "no secret configured to ask BPJS")
        return None

    async def settle(self, kind: str, request: StoredRequest) -> Finding:
        settled = self.without_reading(kind, request)
        if settled is not None:
            return settled
        visit = _visit(request.body)
        assert visit is not None  # checked by without_reading
        return await self._sep_history(request, visit)

    async def _sep_history(self, request: StoredRequest, visit: dict[str, Any]) -> Finding:
        # Values from the stored body go into the path: encoded, so a '/', '?' or '..'
        # in them cannot change which resource is read.
        card, day = (quote(str(visit[k]), safe="") for k in ("noKartu", "tglSep"))
        path = f"/monitoring/HistoriPelayanan/NoKartu/{card}/tglMulai/{day}/tglAkhir/{day}"
        try:
            reply = await signed_read(self.session, self.upstream, request, path, self.clock())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Finding(Settlement.UNREACHABLE, f"history read: {classify_error(exc).reason}",
                           trips_breaker=True)
        except ValueError as exc:  # the path was refused before sending: no read helps
            return Finding(Settlement.UNKNOWN, f"history read not sent: {exc}")
        judged = classify_response(reply.status, reply.headers, reply.body, now=self.clock(),
                                   envelope_required=True)
        if judged.verdict is Verdict.TRANSIENT:
            # BPJS said nothing about the record (5xx, HTML, throttled, credentials):
            # the read is retried, the send is not.
            return Finding(Settlement.UNREACHABLE, f"history read: {judged.reason}",
                           http_status=reply.status, trips_breaker=judged.trips_breaker,
                           retry_after_s=judged.retry_after_s)
        return self._judge_history(request, visit, reply, day)

    def _judge_history(self, request: StoredRequest, visit: dict[str, Any], reply: Reply,
                       day: str) -> Finding:
        status = reply.status
        cons_id = stored_cons_id(self.upstream, request)
        plain = readable(reply.body, encrypted=True, cons_id=cons_id,
                         secret=self.upstream.secret, timestamp=reply.timestamp)
        env = bpjs_envelope.parse(plain.body)
        if env is None or plain.decrypt_error:
            return Finding(Settlement.UNKNOWN, f"history read gave HTTP {status} "
                           "without a readable envelope", http_status=status)
        if env.code not in ("200", "1"):
            # VClaim answers "201 ... tidak ditemukan" when the card has no SEP that day.
            if env.code == "201":
                return Finding(Settlement.ABSENT, f"no SEP for card {visit['noKartu']} on "
                               f"{day} ({env.message})", http_status=status)
            return Finding(Settlement.UNKNOWN, f"history read refused: {env.code} "
                           f"{env.message}", http_status=status)
        histori = env.response.get("histori") if isinstance(env.response, dict) else None
        match = next((h for h in histori or [] if _same_visit(h, visit)), None)
        if match is None:
            return Finding(Settlement.ABSENT, f"card {visit['noKartu']} has no SEP for this "
                           f"visit on {day}", http_status=status)
        result = {env.key: {"code": "200", "message": "OK (ditemukan lewat rekonsiliasi / "
                            "found by reconciliation)"}, "response": {"sep": match}}
        log.warning("ambiguous SEP insert %s reconciled: BPJS holds SEP %s", request.id,
                    match.get("noSep"), extra={"request_id": request.id,
                                               "upstream": self.upstream.name})
        return Finding(Settlement.FOUND, f"found by reconciliation: SEP {match.get('noSep')}",
                       json.dumps(result, ensure_ascii=False).encode(), http_status=status)
