"""What the hash chain costs the store per stored request, without HTTP: N signed-Antrean-
like requests through ``Intake.enqueue_or_match`` into a fresh SQLite store, in
concurrent groups (so they share group commits as under load), with ``[audit] chain``
on and off in alternating rounds; prints the process's CPU time per request (every
thread: the event loop and the writer) for each, and the difference.

    .venv/bin/python bench/chain_store_cost.py [--n 20000] [--group 200] [--rounds 3]

Under ``valgrind --tool=callgrind`` (one setting per run: ``--only on|off``), which
counts instructions and so is immune to the load of a shared machine: compare the two
runs' totals ("Collected") divided by ``--n``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.ids import new_request_id
from proxy.store.records import NewRequest
from proxy.store.sqlite import sqlite_backend

HEADERS = (("content-type", "application/json"), ("x-cons-id", "12345"),
           ("x-timestamp", "1764590400"), ("x-signature", "c2lnbmF0dXJlIG9mIHRoZSBjYWxs"),
           ("user_key", "0123456789abcdef0123456789abcdef"))


def request(n: int, run: str) -> NewRequest:
    body = (b'{"kodebooking":"20240517RSUD0001A' + f"{run}-{n}".encode() +
            b'","taskid":3,"waktu":1715912345678,"jenisresep":"Non racikan",'
            b'"catatan":"bench intake tenang; pasien poli umum"}')
    now = time.time()
    key = f"kodebooking=20240517RSUD0001A{run}-{n}"
    return NewRequest(id=new_request_id(now), upstream="antrean", method="POST",
                      path="/antrean/updatewaktu", query="", headers=HEADERS, body=body,
                      received_at=now, endpoint="antrean.updatewaktu", ordering_key=key,
                      expires_at=now + 86_400, dedup_key=f"{key}|3")


async def store_n(db: Path, chain: bool, n: int, group: int) -> float:
    """CPU seconds (this process, all threads) to store ``n`` requests."""
    backend = sqlite_backend(db, chain=chain)
    await backend.open()
    run = db.parent.name
    try:
        requests = [request(i, run) for i in range(n)]
        began = time.process_time()
        for start in range(0, n, group):
            await asyncio.gather(*(backend.intake.enqueue_or_match(r, 0.0, r.received_at)
                                   for r in requests[start:start + group]))
        return time.process_time() - began
    finally:
        await backend.close()


def one(chain: bool, n: int, group: int) -> float:
    with tempfile.TemporaryDirectory(prefix="tenang-chaincost-") as tmp:
        return asyncio.run(store_n(Path(tmp) / "t.db", chain, n, group)) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000, help="requests per round")
    p.add_argument("--group", type=int, default=200, help="requests in flight at once")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=("on", "off"), help="one setting, one round")
    args = p.parse_args()
    if args.only:
        print(f"chain {args.only}: {one(args.only == 'on', args.n, args.group):.1f} us CPU "
              "per request")
        return 0
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for chain in ((True, False) if r % 2 == 0 else (False, True)):
            cpu[chain].append(one(chain, args.n, args.group))
    on, off = statistics.median(cpu[True]), statistics.median(cpu[False])
    for chain, label in ((True, "on"), (False, "off")):
        print(f"chain {label}: median {statistics.median(cpu[chain]):.1f} us CPU per request "
              f"(rounds: {', '.join(f'{v:.1f}' for v in cpu[chain])})")
    print(f"the chain costs {on - off:+.1f} us per stored request ({on / off - 1:+.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
