"""Export for auditors: the requests of a range of WIB days with their attempts, outcomes
and readable results, as JSON Lines or CSV, with a manifest (``export_manifest``).

One export is written the same way wherever it goes (``tenang export`` to a file, the
admin UI's export page to a zip download): an ``ExportStream`` turns pages of requests
into bytes, counting and hashing them as they pass, so memory stays constant however
many requests match. The rows come from the store's export reader
(``proxy.store.export_reader``), which the entry points hand in: a room other than the
entry points never opens a store.

Formats (the key and column names are the contract, see the README):

- ``jsonl``: one JSON object per line and request, oldest first: the request's detail
  document as ``GET /api/v1/requests/{id}`` answers it (credential headers masked), its
  ``attempts`` nested, ``last_response`` the final readable answer.
- ``csv``: one row per request (``CSV_COLUMNS``) with its final outcome and attempt
  count; its attempts, the same objects as in JSON Lines, as a JSON array in the last
  column, so one file (one hash) holds everything.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from proxy.bpjs.service_day import WIB
from proxy.lifecycle import Status
from proxy.ops.admin_api import detail_of
from proxy.ops.export_manifest import Manifest, manifest_path, tenang_version, write_manifest
from proxy.ops.request_log import day_range
from proxy.shapes import RequestDetail
from proxy.store.chain import ChainHead
from proxy.store.records import RequestFilter, StoredAttempt, StoredRequest

Page = Sequence[tuple[StoredRequest, Sequence[StoredAttempt]]]
# Opens the store's export reader for a filter: pages of requests, oldest first.
PageSource = Callable[[RequestFilter], Iterator[Page]]

CSV_COLUMNS = ("id", "received_at", "received_at_wib", "upstream", "endpoint", "method",
               "path", "query", "status", "reason", "attempt_count", "updated_at",
               "final_outcome", "final_http_status", "last_response", "headers", "body",
               "attempts")
ATTEMPTS_COLUMN = CSV_COLUMNS.index("attempts")


class Format(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """What an export covers: WIB days ``since``..``until`` (both included), and
    optionally one upstream and one (current) status."""

    since: date
    until: date
    upstream: str | None = None
    status: Status | None = None

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError(f"--until {self.until} is a day before --since {self.since}")

    def request_filter(self) -> RequestFilter:
        start, end = day_range(self.since, self.until)
        return RequestFilter(status=self.status, upstream=self.upstream,
                             received_from=start, received_to=end)

    def as_json(self) -> dict[str, str | None]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "timezone": "Asia/Jakarta", "upstream": self.upstream,
                "status": None if self.status is None else self.status.value}


def spreadsheet_cell(value: object) -> str:
    """A CSV cell a spreadsheet would run as a formula is prefixed with a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _wib(ts: float) -> str:
    return datetime.fromtimestamp(ts, WIB).strftime("%Y-%m-%d %H:%M:%S")


def _csv_row(r: StoredRequest, doc: RequestDetail) -> list[str]:
    last = doc["attempts"][-1] if doc["attempts"] else None
    values: list[object] = [
        r.id, doc["received_at"], _wib(r.received_at), r.upstream, r.endpoint, r.method,
        r.path, r.query, r.status.value, r.reason, r.attempts, doc["updated_at"],
        last["outcome"] if last else None, last["http_status"] if last else None,
        doc["last_response"], _json(doc["headers"]), doc["body"], _json(doc["attempts"])]
    return [spreadsheet_cell(v) for v in values]


@dataclass(slots=True)
class ExportStream:
    """Encodes pages of requests in ``fmt``; counts and hashes every byte it returns."""

    fmt: Format
    requests: int = 0
    attempts: int = 0
    size: int = 0
    first_id: str | None = None
    last_id: str | None = None
    _hash: Any = field(default_factory=hashlib.sha256)

    def _out(self, data: bytes) -> bytes:
        self._hash.update(data)
        self.size += len(data)
        return data

    def start(self) -> bytes:
        if self.fmt is Format.JSONL:
            return b""
        return self._out(self._csv([list(CSV_COLUMNS)]))

    def page(self, page: Page) -> bytes:
        docs = [(r, detail_of(r, attempts)) for r, attempts in page]
        for r, doc in docs:
            self.requests += 1
            self.attempts += len(doc["attempts"])
            self.first_id = self.first_id or r.id
            self.last_id = r.id
        if self.fmt is Format.JSONL:
            return self._out("".join(_json(doc) + "\n" for _, doc in docs).encode())
        return self._out(self._csv([_csv_row(r, doc) for r, doc in docs]))

    @staticmethod
    def _csv(rows: Iterable[list[str]]) -> bytes:
        out = io.StringIO()
        # Every cell quoted: a spreadsheet that splits on ';' (the Indonesian locale) must
        # not start a new, unprefixed cell in the middle of a body.
        csv.writer(out, quoting=csv.QUOTE_ALL).writerows(rows)
        return out.getvalue().encode()

    def manifest(self, file_name: str, filters: ExportFilter, created_at: float,
                 chain_head: ChainHead | None = None) -> Manifest:
        return Manifest(
            file=file_name, format=self.fmt.value, sha256=self._hash.hexdigest(),
            size=self.size, requests=self.requests, attempts=self.attempts,
            first_id=self.first_id, last_id=self.last_id, filters=filters.as_json(),
            created_at=created_at, tenang_version=tenang_version(),
            # The hash chain's head once every exported row was read: each of them is in
            # the chain at or before it (None: the chain was not read, e.g. the UI's zip).
            chain_head=None if chain_head is None else chain_head.head.hex(),
            chain_seq=None if chain_head is None else chain_head.seq)


def _temp_beside(path: Path) -> tuple[IO[bytes], Path]:
    """A new file in ``path``'s folder (so a rename moves it into place atomically)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    return os.fdopen(fd, "wb"), Path(name)


def check_output(path: Path) -> None:
    """Raise OSError (or FileExistsError) unless an export can be written at ``path``:
    before any row is read, so a wrong path costs nothing."""
    for target in (path, manifest_path(path)):
        if target.exists():
            raise FileExistsError(f"{target} exists; choose another --output or remove it")
    out, temp = _temp_beside(path)
    out.close()
    temp.unlink()


def write_export(pages: Iterable[Page], fmt: Format, path: Path, filters: ExportFilter,
                 created_at: float,
                 chain_head: Callable[[], ChainHead | None] = lambda: None) -> Manifest:
    """Write the export to ``path`` and its manifest beside it. Both are written to
    temporary files first and renamed into place only when complete: a failure (a bad
    page, a full disk, Ctrl-C) leaves nothing behind. ``chain_head`` is read once the
    last page is written, for the manifest."""
    stream = ExportStream(fmt)
    out, temp = _temp_beside(path)
    try:
        with out:
            out.write(stream.start())
            for page in pages:
                out.write(stream.page(page))
            out.flush()
            os.fsync(out.fileno())
        manifest = stream.manifest(path.name, filters, created_at, chain_head())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:
        write_manifest(manifest, manifest_path(path))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return manifest


class _Chunks(io.RawIOBase):
    """A write-only stream whose bytes are collected and taken in chunks (zipfile writes
    into it; the UI sends each chunk as it is taken)."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def zipped_export(pages: Iterable[Page], fmt: Format, name: str, filters: ExportFilter,
                  created_at: float) -> Generator[bytes, None, None]:
    """The export and its manifest as one zip (``name`` and ``name.manifest.json``),
    in chunks of about a page each: what the UI streams as one download."""
    sink = _Chunks()
    stream = ExportStream(fmt)
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        # force_zip64: the size is not known before the end, and may pass 4 GiB.
        with archive.open(name, "w", force_zip64=True) as entry:
            entry.write(stream.start())
            for page in pages:
                entry.write(stream.page(page))
                yield sink.take()
        manifest = stream.manifest(name, filters, created_at)
        archive.writestr(manifest_path(Path(name)).name, manifest.to_bytes())
    yield sink.take()
