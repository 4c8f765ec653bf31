"""Export for auditors at scale: `tenang export` of 100,000 and of 1,000,000 requests in a
subprocess, its time and peak RSS (GNU time), then `tenang audit verify --export` of the result.

The stores are built fast (``bench/scale_store.py``: the Antrean bookings intake keeps,
received over the last three days), then every request is settled as BPJS would have it:
succeeded, one attempt with a BPJS answer as the relay stores it (decrypted). Peak RSS is
the child's own (``/usr/bin/time``), so each run is measured alone. Constant memory means the
1M export's peak RSS is within a few MB of the 100k one's.

    .venv/bin/python bench/export_bench.py               # 100k and 1M (minutes)
    .venv/bin/python bench/export_bench.py --smoke       # 10k, a few seconds (CI)
    .venv/bin/python bench/export_bench.py --postgres postgresql://USER@HOST/DB

``--postgres`` exports from PostgreSQL instead: each built store is copied into a schema
of its own in that database (`tenang migrate-store`, not measured), exported from there
(one server-side cursor), and the schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.scale_store import UPSTREAM, build
from proxy.bpjs.service_day import WIB

REPO = Path(__file__).resolve().parents[1]
SPAN_S = 3 * 86_400.0
ANSWER = json.dumps({"metadata": {"code": 200, "message": "Ok."}, "response": None}).encode()
SMOKE_RSS_LIMIT_MB = 200.0
TIME = "/usr/bin/time"  # GNU time (Debian package "time")
RSS_MARK = "peak-rss-kib="


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stderr: str


def settle(db: Path) -> None:
    """Every request succeeded at its first attempt, as the relay records it."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO attempts (request_id, number, upstream, started_at, duration_s, "
            "verdict, http_status, error, response_body) SELECT id, 1, upstream, "
            "received_at + 1.5, 0.21, 'success', 200, NULL, ? FROM requests", (ANSWER,))
        conn.execute("UPDATE requests SET status='succeeded', attempts=1, "
                     "next_attempt_at=NULL, reason='BPJS answered 200', "
                     "updated_at=received_at + 1.7")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def measured(argv: list[str]) -> Run:
    """Run ``tenang ARGV`` alone; its wall time and its own peak RSS. Through
    /usr/bin/time (``%M``, the child's maximum RSS in KiB): a child forked from this
    process starts with this process's memory as its high-water mark (Linux keeps it
    across exec), so its own rusage would report the bench's store building instead."""
    started = time.monotonic()
    if not Path(TIME).exists():  # no GNU time: the figure is an upper bound (see above)
        child = subprocess.Popen([sys.executable, "-m", "proxy", *argv], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, child_err = child.communicate()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return Run(time.monotonic() - started, usage.ru_maxrss / 1024, child.returncode,
                   child_err)
    done = subprocess.run([TIME, "-f", f"{RSS_MARK}%M", sys.executable, "-m", "proxy", *argv],
                          cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=False)
    took = time.monotonic() - started
    lines = done.stderr.splitlines()
    kib = next(int(line[len(RSS_MARK):]) for line in reversed(lines)
               if line.startswith(RSS_MARK))
    stderr = "\n".join(line for line in lines if not line.startswith(RSS_MARK))
    return Run(took, kib / 1024, done.returncode, stderr)


def config(folder: Path, url: str) -> Path:
    path = folder / "tenang.toml"
    path.write_text(f'[store]\nurl = "{url}"\n\n[[upstreams]]\nname = "{UPSTREAM}"\n'
                    'prefix = "/antreanrs"\ntarget = "http://127.0.0.1:9/antreanrs"\n',
                    encoding="utf-8")
    return path


def on_postgres(db: Path, dsn: str, schema: str) -> str:
    """The SQLite store ``db`` copied into a new schema of ``dsn``; that schema's URL."""
    subprocess.run(["psql", dsn, "-qc", f"CREATE SCHEMA {schema}"], check=True)
    url = f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"
    subprocess.run([sys.executable, "-m", "proxy", "migrate-store", "--from",
                    f"sqlite:///{db}", "--to", url], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return url


def wib_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, WIB).strftime("%d/%m/%Y")


def bench(n: int, folder: Path, fmt: str, postgres: str | None = None) -> dict[str, float]:
    db = folder / f"export-{n}.db"
    built = build(db, n, span_s=SPAN_S, tag=str(n))
    started = time.monotonic()
    settle(db)
    settled = time.monotonic() - started
    out = folder / f"export-{n}.{fmt}"
    for stale in (out, Path(f"{out}.manifest.json")):
        stale.unlink(missing_ok=True)
    now = time.time()
    schema = f"export_bench_{n}"
    url = f"sqlite:///{db}" if postgres is None else on_postgres(db, postgres, schema)
    cfg = str(config(folder, url))
    run = measured(["export", "--config", cfg, "--since",
                    wib_day(now - SPAN_S - 60), "--until", wib_day(now), "--format", fmt,
                    "--output", str(out)])
    if run.returncode != 0:
        raise SystemExit(f"export of {n} failed: {run.stderr}")
    manifest = json.loads(Path(f"{out}.manifest.json").read_text("utf-8"))
    if manifest["counts"] != {"requests": n, "attempts": n}:
        raise SystemExit(f"export of {n}: manifest counts {manifest['counts']}")
    # The manifest names the store's chain head: verify looks it up in that store.
    check = measured(["audit", "verify", "--export", str(out), "--config", cfg])
    if check.returncode != 0:
        raise SystemExit(f"verify of {n} failed: {check.stderr}")
    size_mb = out.stat().st_size / 1e6
    print(f"{n:>9,} rows: store built {built:.1f} s + settled {settled:.1f} s "
          f"({db.stat().st_size / 1e6:.0f} MB); export {run.seconds:.1f} s "
          f"({n / run.seconds:,.0f} rows/s, {size_mb:.0f} MB {fmt}), peak RSS "
          f"{run.peak_rss_mb:.1f} MB; verify {check.seconds:.1f} s, peak RSS "
          f"{check.peak_rss_mb:.1f} MB", flush=True)
    for path in (db, out, Path(f"{out}.manifest.json")):
        path.unlink(missing_ok=True)
    if postgres is not None:
        subprocess.run(["psql", postgres, "-qc", f"DROP SCHEMA {schema} CASCADE"], check=True,
                       stderr=subprocess.DEVNULL)
    return {"n": n, "export_s": run.seconds, "rss_mb": run.peak_rss_mb,
            "verify_s": check.seconds, "verify_rss_mb": check.peak_rss_mb}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                   default=[100_000, 1_000_000])
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--smoke", action="store_true",
                   help=f"10,000 rows only; fails above {SMOKE_RSS_LIMIT_MB:.0f} MB peak RSS")
    p.add_argument("--dir", type=Path, default=None, help="where the stores are built")
    p.add_argument("--postgres", metavar="DSN", default=None,
                   help="export from a copy of each store in this PostgreSQL database")
    args = p.parse_args()
    sizes = [10_000] if args.smoke else args.sizes
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = [bench(n, Path(tmp), args.format, args.postgres) for n in sizes]
    if args.smoke and results[0]["rss_mb"] > SMOKE_RSS_LIMIT_MB:
        print(f"FAIL: peak RSS {results[0]['rss_mb']:.1f} MB", file=sys.stderr)
        return 1
    if len(results) > 1:
        growth = results[-1]["rss_mb"] - results[0]["rss_mb"]
        print(f"peak RSS {results[-1]['n']:,} vs {results[0]['n']:,}: {growth:+.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
