"""`tenang export` and `tenang audit verify --export`, run as the command they are, on a
real SQLite store and a real PostgreSQL one holding requests over several WIB days, two
upstreams and every kind of ending, seeded through the store's own verbs."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from proxy.bpjs.service_day import WIB
from proxy.config import StoreConfig, load_config
from proxy.ids import new_request_id
from proxy.lifecycle import Status, Transition, Verdict
from proxy.store.backend import Backend
from proxy.store.postgres.backend import postgres_backend
from proxy.store.records import AttemptRecord, NewAudit, NewRequest
from proxy.store.sqlite import sqlite_backend
from proxy.store.sqlite.queries import QUERIES
from tests.cli_support import store_config_file, tenang
from tests.pg_support import schema_now

UPSTREAMS = {"antrean": "/antreanrs/antrean/add", "vclaim": "/vclaim-rest/SEP/2.0/insert"}
OK = {"metadata": {"code": 200, "message": "OK"},
      "response": {"noSep": "0301R0011125V000123"}}  # as the relay stores it: decrypted
DOWN = {"metaData": {"code": "503", "message": "Service Unavailable"}}
# The second upstream of the seeded store, beside antrean (store_config_file's).
VCLAIM = """
[[upstreams]]
name = "vclaim"
prefix = "/vclaim-rest"
target = "http://127.0.0.1:9/vclaim-rest"
"""
REJECTED = {"metadata": {"code": 201, "message": "Data tidak valid"}}


@dataclass(frozen=True, eq=False)  # keyed by identity (answers hold dicts)
class Spec:
    """One seeded request: when (WIB), where, and what its attempts answered."""

    wib: tuple[int, int, int, int, int]  # year, month, day, hour, minute
    upstream: str
    status: Status
    answers: tuple[tuple[Verdict, int | None, dict[str, Any] | None], ...] = ()

    @property
    def received_at(self) -> float:
        return datetime(*self.wib, tzinfo=WIB).timestamp()


SPECS = (
    Spec((2026, 11, 27, 23, 59), "antrean", Status.SUCCEEDED,
         ((Verdict.SUCCESS, 200, OK),)),  # the day before the range
    Spec((2026, 11, 28, 0, 1), "antrean", Status.SUCCEEDED,  # 27/11 17:01 UTC: inside
         ((Verdict.TRANSIENT, 503, DOWN), (Verdict.SUCCESS, 200, OK))),
    Spec((2026, 11, 28, 9, 30), "vclaim", Status.FAILED,
         ((Verdict.PERMANENT, 200, REJECTED),)),
    Spec((2026, 11, 28, 14, 0), "vclaim", Status.DEAD,
         ((Verdict.TRANSIENT, 503, DOWN), (Verdict.TRANSIENT, None, None),
          (Verdict.TRANSIENT, 503, DOWN))),
    Spec((2026, 11, 29, 10, 0), "antrean", Status.CANCELLED),
    Spec((2026, 11, 29, 23, 59), "vclaim", Status.SUCCEEDED,  # 29/11 16:59 UTC: inside
         ((Verdict.SUCCESS, 200, OK),)),
    Spec((2026, 11, 30, 0, 0), "antrean", Status.SUCCEEDED,  # the day after the range
         ((Verdict.SUCCESS, 200, OK),)),
    Spec((2026, 11, 28, 11, 0), "antrean", Status.PENDING),
)
IN_RANGE = sorted((s for s in SPECS if (28, 0) <= (s.wib[2], 0) <= (29, 0)),
                  key=lambda s: s.received_at)


def body_of(spec: Spec) -> bytes:
    return json.dumps({"kodebooking": f"KB-{spec.wib[2]}{spec.wib[3]:02d}{spec.wib[4]:02d}",
                       "nik": "3171234567890123"}).encode()


async def _seed(store: Backend) -> dict[Spec, str]:
    await store.open()
    ids: dict[Spec, str] = {}
    try:
        for spec in sorted(SPECS, key=lambda s: s.status is Status.PENDING):
            at = spec.received_at
            request_id = new_request_id(at)
            ids[spec] = request_id
            await store.intake.enqueue_or_match(NewRequest(
                id=request_id, upstream=spec.upstream, method="POST",
                path=UPSTREAMS[spec.upstream], query="", received_at=at, body=body_of(spec),
                headers=(("Content-Type", "application/json"),
                         ("user_key", "0123456789abcdef0123"))), 0.0, at)
            for number, (verdict, http_status, answer) in enumerate(spec.answers, start=1):
                last = number == len(spec.answers)
                now = at + 60 * number
                claimed = await store.queue.claim_due(spec.upstream, time.time(), 10, "seed",
                                                time.time() + 60)
                assert [r.id for r in claimed] == [request_id]
                await store.queue.complete_attempt(request_id, "seed", AttemptRecord(
                    number, now, 0.25, verdict, http_status,
                    None if verdict is not Verdict.TRANSIENT else "upstream answered 503",
                    None if answer is None else json.dumps(answer).encode()),
                    Transition(spec.status if last else Status.PENDING,
                               f"seeded: {verdict.value}", next_attempt_at=now), now)
            if spec.status is Status.CANCELLED:
                await store.operator.transition(request_id, Status.PENDING,
                                       Transition(Status.CANCELLED, "cancelled by siti"),
                                       at + 5, audit=NewAudit("siti", "cancel"))
    finally:
        await store.close()
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Spec, str]]:
    """A seeded store and its config: the SQLite file ./data/tenang.db, or a schema of
    its own in the PostgreSQL test database."""
    folder = tmp_path_factory.mktemp("export")
    if request.param == "sqlite":
        url = "sqlite:///./data/tenang.db"
        store = sqlite_backend(folder / "data" / "tenang.db")
    else:
        url = schema_now()
        store = postgres_backend(StoreConfig(url=url, pool_min=1, pool_max=2))
    ids = asyncio.run(_seed(store))
    config = store_config_file(folder, url, VCLAIM)
    return config, ids


def export(config: Path, output: Path, *extra: str, fmt: str = "jsonl",
           since: str = "28/11/2026", until: str = "2026-11-29"
           ) -> subprocess.CompletedProcess[str]:
    return tenang("export", "--config", str(config), "--since", since, "--until", until,
                  "--format", fmt, "--output", str(output), *extra)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def manifest_of(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(f"{path}.manifest.json").read_text("utf-8"))
    return doc


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_jsonl_export_holds_the_wib_days_with_attempts_outcomes_and_results(
        seeded: tuple[Path, dict[Spec, str]], tmp_path: Path) -> None:
    config, ids = seeded
    out = tmp_path / "audit.jsonl"
    result = export(config, out)
    assert result.returncode == 0, result.stderr
    records = lines(out)
    # Both days whole in Jakarta time (00:01 on the 28th is 17:01 UTC on the 27th), the
    # days around them not at all; oldest first.
    assert [r["id"] for r in records] == [ids[s] for s in IN_RANGE]
    by_id = {r["id"]: r for r in records}
    for spec in IN_RANGE:
        r = by_id[ids[spec]]
        assert (r["upstream"], r["status"], r["path"]) == (
            spec.upstream, spec.status.value, UPSTREAMS[spec.upstream])
        assert json.loads(r["body"]) == json.loads(body_of(spec))  # in full, for auditors
        assert dict(r["headers"])["user_key"] == "0123…"  # credentials never in full
        assert [(a["number"], a["outcome"], a["http_status"]) for a in r["attempts"]] == [
            (n, v.value, h) for n, (v, h, _) in enumerate(spec.answers, start=1)]
        assert r["attempt_count"] == len(spec.answers)
        last = spec.answers[-1][2] if spec.answers else None
        assert (None if r["last_response"] is None else json.loads(r["last_response"])) \
            == last
    two_attempts = by_id[ids[SPECS[1]]]
    assert json.loads(two_attempts["attempts"][0]["response"]) == DOWN
    assert json.loads(two_attempts["last_response"])["response"]["noSep"] == \
        "0301R0011125V000123"
    assert "tenang: wrote" in result.stdout

    manifest = manifest_of(out)
    assert manifest["counts"] == {"requests": len(IN_RANGE),
                                  "attempts": sum(len(s.answers) for s in IN_RANGE)}
    assert (manifest["first_id"], manifest["last_id"]) == (records[0]["id"],
                                                           records[-1]["id"])
    assert manifest["filters"] == {"since": "2026-11-28", "until": "2026-11-29",
                                   "timezone": "Asia/Jakarta", "upstream": None,
                                   "status": None}
    assert manifest["format"] == "jsonl" and manifest["file"] == "audit.jsonl"
    # The hash chain's head once the export was read: every exported row is in the
    # chain at or before it (here, the whole seeded store's chain).
    head_seq, head = chain_end(config)
    assert (manifest["chain_seq"], manifest["chain_head"]) == (head_seq, head.hex())
    assert manifest["bytes"] == out.stat().st_size
    assert abs(datetime.fromisoformat(manifest["created_at"]).timestamp() - time.time()) < 60
    verified = tenang("audit", "verify", "--export", str(out), "--config", str(config))
    assert verified.returncode == 0, verified.stderr
    assert "matches its manifest" in verified.stdout
    # Without the store the chain head cannot be checked: never passed unchecked.
    alone = tenang("audit", "verify", "--export", str(out))
    assert alone.returncode == 1 and "give --config" in alone.stderr
    assert files_in(tmp_path) == ["audit.jsonl", "audit.jsonl.manifest.json"]


def test_upstream_and_status_narrow_the_export(seeded: tuple[Path, dict[Spec, str]],
                                               tmp_path: Path) -> None:
    config, ids = seeded
    out = tmp_path / "vclaim-succeeded.jsonl"
    result = export(config, out, "--upstream", "vclaim", "--status", "succeeded",
                    since="27/11/2026", until="30/11/2026")
    assert result.returncode == 0, result.stderr
    wanted = [s for s in SPECS if s.upstream == "vclaim" and s.status is Status.SUCCEEDED]
    assert [r["id"] for r in lines(out)] == [ids[s] for s in wanted]
    assert manifest_of(out)["filters"]["upstream"] == "vclaim"
    assert manifest_of(out)["filters"]["status"] == "succeeded"
    out2 = tmp_path / "antrean.jsonl"
    assert export(config, out2, "--upstream", "antrean").returncode == 0
    assert [r["id"] for r in lines(out2)] == [ids[s] for s in IN_RANGE
                                              if s.upstream == "antrean"]


def test_a_csv_export_has_a_row_per_request_with_its_attempts_as_json(
        seeded: tuple[Path, dict[Spec, str]], tmp_path: Path) -> None:
    config, ids = seeded
    out = tmp_path / "audit.csv"
    result = export(config, out, fmt="csv")
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [ids[s] for s in IN_RANGE]
    dead = next(r for r in rows if r["id"] == ids[SPECS[3]])
    assert (dead["status"], dead["attempt_count"], dead["final_outcome"],
            dead["final_http_status"]) == ("dead", "3", "transient", "503")
    assert [a["number"] for a in json.loads(dead["attempts"])] == [1, 2, 3]
    assert dead["received_at_wib"] == "2026-11-28 14:00:00"
    assert manifest_of(out)["format"] == "csv"
    assert manifest_of(out)["counts"]["attempts"] == sum(len(s.answers) for s in IN_RANGE)
    assert tenang("audit", "verify", "--export", str(out), "--config",
                  str(config)).returncode == 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_one_changed_byte_fails_verification(seeded: tuple[Path, dict[Spec, str]],
                                             tmp_path: Path, fmt: str) -> None:
    config, _ = seeded
    out = tmp_path / f"audit.{fmt}"
    assert export(config, out, fmt=fmt).returncode == 0
    data = bytearray(out.read_bytes())
    at = data.index(b"Data tidak valid")
    data[at] = ord("d")  # one letter of one BPJS answer
    out.write_bytes(bytes(data))
    result = tenang("audit", "verify", "--export", str(out))
    assert result.returncode == 1
    assert "does NOT match its manifest" in result.stderr
    assert "sha256: the manifest says" in result.stderr


def test_a_removed_record_is_named_by_count_and_id(seeded: tuple[Path, dict[Spec, str]],
                                                   tmp_path: Path) -> None:
    config, _ = seeded
    out = tmp_path / "audit.jsonl"
    assert export(config, out).returncode == 0
    out.write_text("".join(out.read_text("utf-8").splitlines(keepends=True)[:-1]), "utf-8")
    result = tenang("audit", "verify", "--export", str(out))
    assert result.returncode == 1
    assert f"counts.requests: the manifest says {len(IN_RANGE)}, the export has " \
           f"{len(IN_RANGE) - 1}" in result.stderr
    assert "last_id: the manifest says" in result.stderr


def test_verify_without_a_manifest_says_so(tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    out.write_text("{}\n", "utf-8")
    result = tenang("audit", "verify", "--export", str(out))
    assert result.returncode == 2
    assert "no manifest at" in result.stderr


def test_a_manifest_naming_a_chain_head_is_not_passed_unchecked(
        seeded: tuple[Path, dict[Spec, str]], tmp_path: Path) -> None:
    config, _ = seeded
    out = tmp_path / "audit.jsonl"
    assert export(config, out).returncode == 0
    manifest = Path(f"{out}.manifest.json")
    doc = json.loads(manifest.read_text("utf-8"))
    manifest.write_text(json.dumps({**doc, "chain_head": "ab" * 32}), "utf-8")
    result = tenang("audit", "verify", "--export", str(out), "--config", str(config))
    assert result.returncode == 1
    assert f"chain_head: the manifest says {'ab' * 32} at seq {doc['chain_seq']}" \
        in result.stderr
    manifest.write_text(json.dumps({**doc, "chain_seq": doc["chain_seq"] + 1000}), "utf-8")
    result = tenang("audit", "verify", "--export", str(out), "--config", str(config))
    assert result.returncode == 1
    assert "has no entry seq" in result.stderr


def chain_end(config: Path) -> tuple[int, bytes]:
    """The last chain entry, read with the database's own client."""
    url = load_config(config).store.url
    if not url.startswith("sqlite:"):
        return asyncio.run(pg_chain_end(url))
    conn = sqlite3.connect(config.parent / "data" / "tenang.db")
    try:
        seq, head = conn.execute(QUERIES["chain_head"]).fetchone()
    finally:
        conn.close()
    return seq, bytes(head)


async def pg_chain_end(url: str) -> tuple[int, bytes]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("SELECT seq, head FROM chain ORDER BY seq DESC LIMIT 1")
    finally:
        await conn.close()
    assert row is not None
    return row["seq"], bytes(row["head"])


@pytest.mark.parametrize("args, message", [
    (("--since", "31/02/2026"), "argument --since: '31/02/2026' is not a day"),
    (("--until", "kemarin"), "argument --until: 'kemarin' is not a day"),
    (("--status", "lost"), "argument --status: invalid choice: 'lost'"),
    (("--format", "xml"), "argument --format: invalid choice: 'xml'"),
    (("--since", "30/11/2026"), "is a day before --since"),
])
def test_bad_arguments_exit_2_and_write_nothing(
        seeded: tuple[Path, dict[Spec, str]], tmp_path: Path, args: tuple[str, ...],
        message: str) -> None:
    config, _ = seeded
    argv = {"--since": "28/11/2026", "--until": "29/11/2026", "--format": "jsonl"}
    argv.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = tenang("export", "--config", str(config), "--output", str(tmp_path / "x.jsonl"),
                    *[part for item in argv.items() for part in item])
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert files_in(tmp_path) == []


def test_an_unwritable_output_exits_2_and_leaves_nothing(
        seeded: tuple[Path, dict[Spec, str]], tmp_path: Path) -> None:
    config, _ = seeded
    result = export(config, tmp_path / "no" / "such" / "folder.jsonl")
    assert result.returncode == 2
    assert f"cannot write {tmp_path / 'no' / 'such' / 'folder.jsonl'}" in result.stderr
    (tmp_path / "taken.jsonl").write_text("an earlier export\n", "utf-8")
    result = export(config, tmp_path / "taken.jsonl")
    assert result.returncode == 2
    assert "exists; choose another --output" in result.stderr
    assert (tmp_path / "taken.jsonl").read_text("utf-8") == "an earlier export\n"
    assert files_in(tmp_path) == ["taken.jsonl"]


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    config = tmp_path / "tenang.toml"
    config.write_text('[store]\nurl = "sqlite:///./nothing/tenang.db"\n\n[[upstreams]]\n'
                      'name = "antrean"\nprefix = "/antreanrs"\n'
                      'target = "http://127.0.0.1:9/antreanrs"\n', "utf-8")
    result = export(config, tmp_path / "x.jsonl")
    assert result.returncode == 1
    assert "no database at" in result.stderr
    assert files_in(tmp_path) == ["tenang.toml"]


async def test_the_export_runs_beside_a_serving_store(tmp_path: Path) -> None:
    """Tenang's writer and reader hold the file open (WAL): the export reads beside
    them, and leaves the writer able to commit."""
    folder = tmp_path
    db = folder / "data" / "tenang.db"
    store = sqlite_backend(db)
    await store.open()
    try:
        at = datetime(2026, 11, 28, 8, 0, tzinfo=WIB).timestamp()
        for i in range(3):
            await store.intake.enqueue_or_match(NewRequest(
                id=new_request_id(at + i), upstream="antrean", method="POST",
                path="/antreanrs/antrean/add", query="", headers=(), body=b"{}",
                received_at=at + i), 0.0, at + i)
        (folder / "tenang.toml").write_text(
            '[store]\nurl = "sqlite:///./data/tenang.db"\n\n[[upstreams]]\n'
            'name = "antrean"\nprefix = "/antreanrs"\n'
            'target = "http://127.0.0.1:9/antreanrs"\n', "utf-8")
        out = folder / "live.jsonl"
        result = await asyncio.to_thread(export, folder / "tenang.toml", out,
                                         since="28/11/2026", until="28/11/2026")
        assert result.returncode == 0, result.stderr
        assert len(lines(out)) == 3
        await store.check_writable()  # the export left the writer able to commit
    finally:
        await store.close()
