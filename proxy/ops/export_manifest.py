"""An export's manifest (``PATH.manifest.json``) and its verification
(``tenang audit verify --export PATH``).

The manifest says what the export holds: the SHA-256 and size of the file, how many
requests and attempts, the first and last request id, the filters it was made with, when
and by which Tenang, and the head of the store's hash chain at export time
(``chain_head``, and its ``chain_seq``: every exported row is in the chain at or before
that entry; null when the export did not read the chain). Verification reads the export
again, streaming, and compares every one of those it can recompute; the chain head is
checked against the store's chain (``--config``), where the entry ``chain_seq`` must
still carry that head.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from proxy.shapes import iso_utc
from proxy.store.chain import GENESIS

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1
_READ_CHUNK = 1 << 20


def tenang_version() -> str:
    """This Tenang's version (the CLI's --version, and every manifest names it)."""
    try:
        return version("tenang")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class ManifestError(Exception):
    """The manifest or the export cannot be read at all (missing, not JSON...)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    file: str
    format: str
    sha256: str
    size: int
    requests: int
    attempts: int
    first_id: str | None
    last_id: str | None
    filters: dict[str, str | None]
    created_at: float
    tenang_version: str
    chain_head: str | None
    chain_seq: int | None = None

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["created_at"] = iso_utc(self.created_at)
        doc["counts"] = {"requests": doc.pop("requests"), "attempts": doc.pop("attempts")}
        doc["bytes"] = doc.pop("size")
        return {"manifest_version": MANIFEST_VERSION, **doc}

    def to_bytes(self) -> bytes:
        return (json.dumps(self.as_json(), ensure_ascii=False, indent=2) + "\n").encode()


def manifest_path(export: Path) -> Path:
    return export.with_name(export.name + MANIFEST_SUFFIX)


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Written to a temporary file and renamed into place: never half a manifest."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(manifest.to_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def read_manifest(export: Path) -> dict[str, Any]:
    path = manifest_path(export)
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ManifestError(f"no manifest at {path} (an export's manifest is written "
                            "beside it as PATH.manifest.json)") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ManifestError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("counts"), dict):
        raise ManifestError(f"{path} is not an export manifest")
    return doc


@dataclass(frozen=True, slots=True)
class Found:
    """What reading the export finds."""

    sha256: str
    size: int
    requests: int
    attempts: int
    first_id: str | None
    last_id: str | None


def _digest(export: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with export.open("rb") as f:
        while chunk := f.read(_READ_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _jsonl_records(export: Path) -> Iterator[tuple[str, int]]:
    with export.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                doc = json.loads(line)
                yield str(doc["id"]), len(doc["attempts"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"line {number} is not an exported request ({exc})") from exc


def _csv_records(export: Path) -> Iterator[tuple[str, int]]:
    # A body may be longer than the csv module's default cell limit (128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    with export.open("r", encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or "id" not in header or "attempts" not in header:
            raise ValueError("the first row is not the export's header")
        id_at, attempts_at = header.index("id"), header.index("attempts")
        for number, row in enumerate(rows, start=2):
            try:
                yield row[id_at], len(json.loads(row[attempts_at]))
            except (ValueError, IndexError, TypeError) as exc:
                raise ValueError(f"row {number} is not an exported request ({exc})") from exc


def read_export(export: Path, fmt: str) -> Found:
    """Hash and count the export, streaming; ValueError naming the first unreadable
    record, ManifestError when the file cannot be read at all."""
    try:
        sha, size = _digest(export)
        records = _csv_records(export) if fmt == "csv" else _jsonl_records(export)
        requests = attempts = 0
        first = last = None
        for request_id, n in records:
            requests += 1
            attempts += n
            first = first or request_id
            last = request_id
    except FileNotFoundError:
        raise ManifestError(f"no export at {export}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc})") from exc
    except OSError as exc:
        raise ManifestError(f"cannot read {export}: {exc.strerror}") from exc
    return Found(sha, size, requests, attempts, first, last)


# The head the store's chain has at a seq (None: no such entry); ``--config`` gives one.
ChainAt = Callable[[int], bytes | None]


def check_chain_head(chain_head: object, chain_seq: object,
                     chain_at: ChainAt | None) -> str | None:
    """A difference when the manifest's chain head does not check out: it must be the
    head of the store's chain at ``chain_seq``. A head is never passed unchecked: without
    the store (``chain_at`` None) that is a difference too."""
    if chain_head is None:
        return None
    if not isinstance(chain_head, str) or not isinstance(chain_seq, int) \
            or isinstance(chain_seq, bool):
        return f"chain_head {chain_head!r} / chain_seq {chain_seq!r}: not a chain position"
    if chain_seq == 0:
        # The empty chain's head is the genesis value in every store: nothing to look up.
        # (A store whose records all predate the chain exports at seq 0.)
        return None if chain_head.lower() == GENESIS.hex() else (
            f"chain_head: the manifest says {chain_head} at seq 0, where every chain "
            f"starts at {GENESIS.hex()}")
    if chain_at is None:
        return (f"chain_head {chain_head} (seq {chain_seq}) not checked: give --config FILE "
                "of the store the export was made from")
    found = chain_at(chain_seq)
    if found is None:
        return f"chain_head: the store's chain has no entry seq {chain_seq}"
    if found.hex() != chain_head.lower():
        return (f"chain_head: the manifest says {chain_head} at seq {chain_seq}, the "
                f"store's chain has {found.hex()}")
    return None


def verify_export(export: Path, chain_at: ChainAt | None = None) -> list[str]:
    """What differs between ``export`` and its manifest (empty: it verifies), and whether
    its chain head is in the store's chain (``chain_at``). ManifestError when either
    cannot be read at all."""
    doc = read_manifest(export)
    try:
        found = read_export(export, str(doc.get("format")))
    except ValueError as exc:
        return [f"{export}: {exc}"]
    counts = doc["counts"]
    expected = {"sha256": doc.get("sha256"), "size": doc.get("bytes"),
                "requests": counts.get("requests"), "attempts": counts.get("attempts"),
                "first_id": doc.get("first_id"), "last_id": doc.get("last_id")}
    names = {"size": "bytes", "requests": "counts.requests", "attempts": "counts.attempts"}
    differences = [
        f"{names.get(f.name, f.name)}: the manifest says {expected[f.name]!r}, "
        f"the export has {getattr(found, f.name)!r}"
        for f in fields(Found) if expected[f.name] != getattr(found, f.name)]
    if (chain := check_chain_head(doc.get("chain_head"), doc.get("chain_seq"),
                                  chain_at)) is not None:
        differences.append(chain)
    return differences


def describe(manifest: Manifest) -> str:
    """One line for a person: what was written."""
    out = io.StringIO()
    out.write(f"{manifest.requests} requests, {manifest.attempts} attempts")
    if manifest.first_id:
        out.write(f", ids {manifest.first_id} .. {manifest.last_id}")
    out.write(f"; sha256 {manifest.sha256}")
    return out.getvalue()
