"""In-memory BPJS state: SEPs, Antrean bookings with their task times, Aplicare rooms.

Pure data and domain verbs; no HTTP. The service modules decide what to answer, this
module only remembers what was applied, so tests can read it back (``GET /_sim/state``).
Deleted SEPs and cancelled bookings stay, flagged, because "what did BPJS end up with"
is exactly what a proxy test wants to inspect.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Sep:
    no_sep: str
    no_kartu: str
    tgl_sep: str                 # yyyy-MM-dd, as the SIMRS sent it
    ppk_pelayanan: str
    jns_pelayanan: str           # "1" rawat inap, "2" rawat jalan
    poli: str
    no_rujukan: str
    diagnosa: str
    kls_rawat: str
    no_mr: str
    catatan: str
    created_at: float
    request: dict[str, Any]      # the t_sep body as received
    tgl_pulang: str | None = None
    deleted: bool = False
    updates: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Task:
    taskid: int
    waktu: int                   # epoch ms from the SIMRS
    received_at: float           # simulator clock, seconds


@dataclass
class Booking:
    kodebooking: str
    fields: dict[str, Any]
    created_at: float
    tasks: dict[int, Task] = field(default_factory=dict)
    cancelled: bool = False
    cancel_reason: str | None = None

    @property
    def new_patient(self) -> bool:
        return str(self.fields.get("pasienbaru", "0")) == "1"

    def as_dict(self) -> dict[str, Any]:
        return {"kodebooking": self.kodebooking, "fields": self.fields,
                "created_at": self.created_at, "cancelled": self.cancelled,
                "cancel_reason": self.cancel_reason,
                "task_ids": sorted(self.tasks),
                "tasks": [asdict(t) for t in sorted(self.tasks.values(),
                                                    key=lambda t: t.received_at)]}


BedKey = tuple[str, str, str]    # (kodeppk, kodekelas, koderuang)

BED_COUNTS = ("kapasitas", "tersedia", "tersediapria", "tersediawanita", "tersediapriawanita")


@dataclass
class Room:
    kodeppk: str
    kodekelas: str
    koderuang: str
    namaruang: str
    counts: dict[str, int]
    updated_at: float
    updates: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kodeppk": self.kodeppk, "kodekelas": self.kodekelas,
                "koderuang": self.koderuang, "namaruang": self.namaruang,
                **self.counts, "updated_at": self.updated_at, "updates": self.updates}


@dataclass
class Records:
    seps: dict[str, Sep] = field(default_factory=dict)
    bookings: dict[str, Booking] = field(default_factory=dict)
    rooms: dict[BedKey, Room] = field(default_factory=dict)
    sep_serials: Counter[str] = field(default_factory=Counter)
    icare_last_at: float | None = None

    # -- VClaim ------------------------------------------------------------------------

    def next_sep_number(self, ppk: str, month: int, year: int) -> str:
        """``ppk + MM + YY + "V" + 6 digits``, counting per provider and month."""
        prefix = f"{ppk}{month:02d}{year % 100:02d}V"
        self.sep_serials[prefix] += 1
        return f"{prefix}{self.sep_serials[prefix]:06d}"

    def live_seps(self) -> list[Sep]:
        return [s for s in self.seps.values() if not s.deleted]

    def same_day_outpatient(self, no_kartu: str, tgl_sep: str, poli: str) -> Sep | None:
        for sep in self.live_seps():
            if (sep.no_kartu, sep.tgl_sep, sep.jns_pelayanan) == (no_kartu, tgl_sep, "2") \
                    and sep.poli.upper() == poli.upper():
                return sep
        return None

    def open_inpatient(self, no_kartu: str) -> Sep | None:
        for sep in self.live_seps():
            if sep.no_kartu == no_kartu and sep.jns_pelayanan == "1" and not sep.tgl_pulang:
                return sep
        return None

    def last_sep_for_referral(self, no_rujukan: str) -> Sep | None:
        found = [s for s in self.live_seps() if s.no_rujukan == no_rujukan]
        return max(found, key=lambda s: s.created_at) if found else None

    def seps_for_card(self, no_kartu: str, start: str, end: str) -> list[Sep]:
        # yyyy-MM-dd strings order like dates
        return sorted((s for s in self.live_seps()
                       if s.no_kartu == no_kartu and start <= s.tgl_sep <= end),
                      key=lambda s: s.created_at)

    def seps_on(self, tgl_sep: str, jns_pelayanan: str) -> list[Sep]:
        return sorted((s for s in self.live_seps()
                       if s.tgl_sep == tgl_sep and s.jns_pelayanan == jns_pelayanan),
                      key=lambda s: s.created_at)

    # -- snapshot ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"seps": [s.as_dict() for s in self.seps.values()],
                "bookings": [b.as_dict() for b in self.bookings.values()],
                "beds": [r.as_dict() for r in self.rooms.values()]}
