"""Who is shown patient identifiers in full, and the audit entry each full view leaves.

Viewers and operators see stored requests with NIK, card and phone numbers masked
(``proxy.observe.patient_data``) in every view: the UI's log, detail page and CSV, and the
JSON API. Auditors and admins (and the admin API token, which acts as an admin) hold
``Permission.IDENTIFIERS`` and see them in full, and each such view is written to the audit
log before anything is shown (an audit write that fails fails the view):

- a request's detail (UI page, API lookup): one ``view_full`` entry naming the viewer,
  the request and the page or call. The API's answer to a retry or cancel shows the
  detail too; the action's own entry (who, which request, when) covers it;
- a page of the request log (UI or API) showing requests this viewer was not shown in
  full in the last ``FullViews.window_s`` (an hour): one ``list_full`` entry naming the
  viewer, the call, and those requests' ids. The UI's log refreshes itself and scripts
  poll the API: the same page again, seen already, writes nothing, so the trail says who
  saw which patient's request first, not how often a page was reloaded;
- the CSV export keeps its own ``export_csv`` entry (it names the filter).

Masking works on copies of the records; what is stored is never changed.

A search of the log (``q``) matches the stored requests for everyone: the hospital's
counter staff (viewers) find a patient's requests by the card number the patient hands
over, and are shown them masked. Such a search tells a masked role which requests carry
an identifier it is not shown, so it is an audited lookup ("break the glass"), never a
refusal: a viewer's or operator's search whose text holds a full NIK, card or phone
number (as ``proxy.observe.patient_data`` recognises them) writes one
``search_identifier`` entry naming who, the call and the ids found, with the text as
they are shown it (last four digits). Like full views, the same search again within
``FullViews.window_s`` (the UI refreshing itself, a script polling) writes nothing until
it finds a request it did not before. The CSV export and the bulk retry's dry-run count
search the same way (the dry run names how many it counted). Auditors' and admins'
searches leave only their full-view entries.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.observe.patient_data import mask_body, mask_text
from proxy.ops.auth import Permission, Principal
from proxy.store.protocols import AuditLog
from proxy.store.records import StoredAttempt, StoredRequest

VIEW_FULL = "view_full"
LIST_FULL = "list_full"
SEARCH_IDENTIFIER = "search_identifier"
VIEW_ACTIONS = frozenset({VIEW_FULL, LIST_FULL})


def _text(value: str | None) -> str | None:
    return None if value is None else mask_text(value)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """How much one principal is shown: ``full``, or identifiers masked."""

    full: bool

    def text(self, value: str) -> str:
        return value if self.full else mask_text(value)

    def request(self, r: StoredRequest) -> StoredRequest:
        if self.full:
            return r
        return dataclasses.replace(
            r, path=mask_text(r.path), query=mask_text(r.query),
            headers=tuple((k, mask_text(v)) for k, v in r.headers), body=mask_body(r.body),
            reason=_text(r.reason), ordering_key=_text(r.ordering_key),
            dedup_key=_text(r.dedup_key), coalesce_key=_text(r.coalesce_key))

    def attempt(self, a: StoredAttempt) -> StoredAttempt:
        if self.full:
            return a
        return dataclasses.replace(
            a, error=_text(a.error),
            response_body=None if a.response_body is None else mask_body(a.response_body))


def disclosure_for(who: Principal) -> Disclosure:
    return Disclosure(full=who.can(Permission.IDENTIFIERS))


async def shown_detail(log: AuditLog, who: Principal, r: StoredRequest,
                       attempts: Sequence[StoredAttempt], *, via: str, at: float,
                       audited_by_action: bool = False,
                       ) -> tuple[StoredRequest, list[StoredAttempt]]:
    """``r`` and its attempts as ``who`` may see them; a full view is audited first,
    unless it answers an action that was audited already (``audited_by_action``)."""
    shown = disclosure_for(who)
    if shown.full and not audited_by_action:
        await log.audit(who.name, VIEW_FULL, r.id, via, at)
    return shown.request(r), [shown.attempt(a) for a in attempts]


class FullViews:
    """Which requests each principal was shown in full lately (in this process), and
    what a masked principal's searches by identifier found (``audited_search``), so a
    page of the log is audited for what it discloses anew, not each time it is shown.
    Bounded: past ``max_ids`` remembered, the oldest are forgotten (and audited again)."""

    def __init__(self, window_s: float = 3600.0, max_ids: int = 100_000) -> None:
        self.window_s = window_s
        self._max_ids = max_ids
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # oldest first

    def unseen(self, who: str, ids: Sequence[str], now: float) -> list[str]:
        """Of ``ids``, those ``who`` was not shown in full since ``now - window_s``; all
        of ``ids`` count as shown at ``now`` from here on."""
        while self._seen and (len(self._seen) > self._max_ids
                              or next(iter(self._seen.values())) <= now - self.window_s):
            self._seen.popitem(last=False)
        fresh = [i for i in ids if (who, i) not in self._seen]
        for i in ids:
            self._seen[(who, i)] = now
            self._seen.move_to_end((who, i))
        return fresh


def searched_identifier(text: str | None) -> str | None:
    """``text`` as a masked role is shown it when it holds a full patient identifier
    (the display's own recognisers found something to mask), else None."""
    if not text:
        return None
    masked = mask_text(text)
    return None if masked == text else masked


async def audited_search(log: AuditLog, who: Principal, text: str | None, *, via: str,
                         at: float, seen: FullViews, ids: Sequence[str] = (),
                         count: int | None = None) -> None:
    """A masked role's search by a full identifier, audited for what it finds anew:
    ``ids`` found (or, for a count alone, ``count``). Nothing for full roles (their
    full views are audited) nor for a search that names no identifier."""
    shown = searched_identifier(text)
    if shown is None or disclosure_for(who).full:
        return
    # Remembered per search text (in memory, as typed): the search itself, and each
    # request it found, or the count it came to.
    search = f"q\x00{text}\x00"
    found = {f"{search}{i}": i for i in ids}
    keys = [search, *found] + ([] if count is None else [f"{search}#{count}"])
    fresh = seen.unseen(who.name, keys, at)
    if not fresh:
        return
    new = [found[k] for k in fresh if k in found]
    detail = f"{via}: q={shown}: {len(new) if count is None else count} requests"
    await log.audit(who.name, SEARCH_IDENTIFIER, None,
                    detail + (f": {', '.join(new)}" if new else ""), at)


async def shown_page(log: AuditLog, who: Principal, rows: Sequence[StoredRequest], *,
                     via: str, at: float, seen: FullViews,
                     text: str | None = None) -> list[StoredRequest]:
    """One page of the request log (searched for ``text``, the listing's ``q``) as
    ``who`` may see it. In full: audited first for the requests ``seen`` says ``who``
    was not shown lately. Masked: a search by a full identifier is audited first."""
    shown = disclosure_for(who)
    if shown.full:
        fresh = seen.unseen(who.name, [r.id for r in rows], at)
        if fresh:
            await log.audit(who.name, LIST_FULL, None,
                            f"{via}: {len(fresh)} requests: {', '.join(fresh)}", at)
        return list(rows)
    await audited_search(log, who, text, via=via, at=at, seen=seen, ids=[r.id for r in rows])
    return [shown.request(r) for r in rows]
