"""Collector start benchmark: how long a cluster's collector takes to learn its state, and its
memory, as the log grows (issue #11 §5: start must not grow with the log's length).

Workload: the projections benchmark's (``bench/projections_bench.py``): 10,000 guests of
cluster ``lab``, then random changes, to 100,000 and 1,000,000 events. At each size:

* **start** (what ``serve`` does now): ``_Cluster._catch_up()`` of a collector service, i.e.
  the saved fold (``collector_snapshots``) plus the events after it, and the observations.
  The snapshot is taken :data:`collectors.snapshots.EVERY` events before the head: the most a
  start has to fold besides it (the service saves every that many events);
* **whole fold** (the peer: what every start did before, and still does without a usable
  snapshot): the fold of the whole log from position 0.

Each is measured in a fresh process (``--repeat`` times, the median reported): wall time of
the start alone, and the process's peak RSS after it beside its RSS before (imports and the
open store). ::

    .venv/bin/python bench/collector_start_bench.py                    # SQLite and PostgreSQL
    .venv/bin/python bench/collector_start_bench.py --backends sqlite --sizes 100000

Databases are kept between runs (``--cache-dir``; PostgreSQL: schema ``start_bench_N``).
Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from projections_bench import DEFAULT_PG, Workload, fill

from collectors import snapshots
from collectors.config import ClusterConfig
from collectors.service import CollectorService
from collectors.state import Known
from eventstore import DatabaseUnavailableError, open_store


def _rss_mib() -> float:
    """This process's resident memory now (MiB)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    """This process's peak resident memory (MiB): VmHWM, not getrusage's ru_maxrss, which a
    child inherits from the parent it was forked from (this script's own, after a fold)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- one measurement, in a process of its own ---------------------------------------------------
async def measure(url: str, mode: str) -> dict[str, Any]:
    store = await open_store(url)
    try:
        head = await store.head()
        before = _rss_mib()
        started = time.perf_counter()
        if mode == "start":
            cluster = ClusterConfig(
                name="lab", host="127.0.0.1:1", token_id="a@pve!b", token_secret_env="UNSET"
            )
            service = CollectorService(store, [cluster], fingerprint_key=b"k" * 32, environ={})
            known = await service._cluster("lab")._catch_up()  # what the first poll does
        else:
            known = Known("lab")
            async for event in store.read_all(0):
                known.apply(event)
        seconds = time.perf_counter() - started
        assert known.head == head, (known.head, head)
        return {
            "seconds": seconds,
            "rss_before_mib": before,
            "peak_mib": _peak_mib(),
            "resources": len(known.states),
        }
    finally:
        await store.close()


# -- the databases ------------------------------------------------------------------------------
async def prepare(url: str, events: int) -> None:
    """Append the workload up to ``events`` (if not there yet); save the fold EVERY before it."""
    store = await open_store(url)  # migrate() makes a PostgreSQL URL's schema
    try:
        await store.migrate()
        workload = Workload()
        while True:  # other suites on the machine terminate PostgreSQL sessions now and then
            try:
                await fill(store, workload, events)
                break
            except DatabaseUnavailableError as exc:
                print(f"  {exc}; going on", flush=True)
        known = Known("lab")
        async for event in store.read_all(0, until=events - snapshots.EVERY):
            known.apply(event)
        async with store.transaction() as conn:
            await conn.execute("DELETE FROM collector_snapshots")
        assert await snapshots.save(store, known)
    finally:
        await store.close()


def run_one(url: str, mode: str, tries: int = 3) -> dict[str, Any]:
    """One measurement in a fresh process (tried again if the database dropped it)."""
    error = ""
    for _ in range(tries):
        out = subprocess.run(
            [sys.executable, __file__, "--measure", mode, "--url", url],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0:
            return dict(json.loads(out.stdout.strip().splitlines()[-1]))
        error = (out.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  a {mode} run failed: {error}", flush=True)
    raise SystemExit(f"{mode} failed {tries} times: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--cache-dir", default=os.path.join(tempfile.gettempdir(), "pvetrail-start-bench")
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.url, args.measure))))
        return
    rows = []
    for backend in args.backends.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            if backend == "sqlite":
                os.makedirs(args.cache_dir, exist_ok=True)
                url = f"sqlite:///{Path(args.cache_dir) / f'start-bench-{size}.db'}"
            else:
                separator = "&" if "?" in DEFAULT_PG else "?"
                url = f"{DEFAULT_PG}{separator}schema=start_bench_{size}"
            print(f"{backend}, {size:,} events: preparing", flush=True)
            asyncio.run(prepare(url, size))
            for mode in ("start", "whole"):
                runs = [run_one(url, mode) for _ in range(args.repeat)]
                row = {
                    "backend": backend,
                    "events": size,
                    "mode": mode,
                    "seconds": statistics.median(r["seconds"] for r in runs),
                    "rss_before_mib": statistics.median(r["rss_before_mib"] for r in runs),
                    "peak_mib": statistics.median(r["peak_mib"] for r in runs),
                    "resources": runs[0]["resources"],
                }
                rows.append(row)
                print(
                    f"  {mode:>5}: {row['seconds']:.3f} s, peak RSS {row['peak_mib']:.0f} MiB "
                    f"(before {row['rss_before_mib']:.0f} MiB), {row['resources']:,} resources",
                    flush=True,
                )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
