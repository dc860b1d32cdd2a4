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
(EXPLAIN QUERY PLAN, or EXPLAIN). Beside each, its peer in the same run: the read side's own
answer to the same question (what the HTTP API serves, every page of it, without HTTP); for
a node's changes, which the read side has no query for, the net change of the whole
inventory over the same hour. Results: docs/benchmarks.md.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from inventory_probe import _url
from projections_bench import T0

from eventstore import EventStore, open_store
from projections import queries
from tests.api.sql_examples import bind, examples

PEERS = {
    "inventory-at": "queries.inventory(at=T), every page of 1,000",
    "node-changes": "queries.changes(since=T1, until=T2) (all nodes), every page of 1,000",
    "history": "queries.history(id), every page of 1,000",
    "graph-at": "queries.relations(at=T)",
}


async def _pages(first: Any, more: Any) -> int:
    """Items of every page of a paged answer (``more(cursor)`` asks for the next)."""
    page = await first
    count = len(page.items)
    while page.next_cursor:
        page = await more(page.next_cursor)
        count += len(page.items)
    return count


async def peer(store: EventStore, name: str, v: dict[str, Any]) -> int:
    """The read side's answer to the example's question; the number of items it gave."""
    if name == "inventory-at":
        return await _pages(
            queries.inventory(store, at=v["at"], limit=1000),
            lambda c: queries.inventory(store, cursor=c, limit=1000),
        )
    if name == "node-changes":
        return await _pages(
            queries.changes(store, since=v["since"], until=v["until"], limit=1000),
            lambda c: queries.changes(store, cursor=c, limit=1000),
        )
    if name == "history":
        return await _pages(
            queries.history(store, v["id"], limit=1000),
            lambda c: queries.history(store, v["id"], cursor=c, limit=1000),
        )
    graph = await queries.relations(store, at=v["at"])
    return len(graph.edges)


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
            asked = {
                "at": T0 + timedelta(hours=2),
                "since": T0 + timedelta(hours=2),
                "until": T0 + timedelta(hours=3),
                "id": values["id"],
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
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    items = await peer(store, name, asked)
                    times.append((time.perf_counter() - started) * 1000)
                median = statistics.median(times)
                print(f"   peer {PEERS[name]}: {items} items, median {median:.1f} ms")
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load average (1, 5, 15 min): {load}")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
