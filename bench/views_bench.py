"""docs/sql.md's example queries on a kept log: their plans and how long each takes (issue #16).

The examples are read from docs/sql.md itself (what users copy is what is measured). Build a
log once with ``inventory_probe.py`` (10,000 guests, ten events a second), then::

    .venv/bin/python bench/inventory_probe.py build --sqlite /tmp/views.db --size 100000
    .venv/bin/python bench/views_bench.py --sqlite /tmp/views.db
    .venv/bin/python bench/inventory_probe.py build --schema views_100k --size 100000
    .venv/bin/python bench/views_bench.py --schema views_100k

Each example runs ``--runs`` times (the median is printed, with the rows it gave) at a time
two hours into the log (the inventory, the graph), over the hour after it (a node's changes:
a busy hour, a tenth of the log) and for one guest (its history); the plan is printed first
(EXPLAIN QUERY PLAN, or EXPLAIN). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from inventory_probe import _url
from projections_bench import T0

from eventstore import open_store
from tests.api.sql_examples import bind, examples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", help="a PostgreSQL schema built by inventory_probe.py")
    parser.add_argument("--sqlite", help="a SQLite file built by inventory_probe.py")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    backend = "sqlite" if args.sqlite else "postgresql"
    store = await open_store(_url(args))
    try:
        async with store.read_connection() as conn:
            t = conn.time_in(T0 + timedelta(hours=2))
            values = {
                "t": t,
                "t1": t,
                "t2": conn.time_in(T0 + timedelta(hours=3)),
                "node": "pve2",
                "id": "lab/qemu/150",
            }
            explain = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
            for (name, kind), sql in examples().items():
                if kind != backend:
                    continue
                statement, bound = bind(sql, backend, values)
                print(f"== {name}")
                for row in await conn.fetch(explain + statement, bound):
                    print("   ", row[-1])
                times: list[float] = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    rows = await conn.fetch(statement, bound)
                    times.append((time.perf_counter() - started) * 1000)
                print(f"   {len(rows)} rows, median {statistics.median(times):.1f} ms")
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load average (1, 5, 15 min): {load}")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
