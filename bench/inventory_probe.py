"""The whole inventory at a random past time, on a log kept between runs (issue #4).

``projections_bench.py`` builds its log afresh on every run (minutes at 1,000,000 events);
this helper builds the same workload once into a PostgreSQL schema (or SQLite file) that it
keeps, then times the inventory query against it as often as needed::

    .venv/bin/python bench/inventory_probe.py build --schema inv_1m --size 1000000
    .venv/bin/python bench/inventory_probe.py time --schema inv_1m [--runs 20]
    .venv/bin/python bench/inventory_probe.py drop --schema inv_1m

``time --explain`` prints the plan (EXPLAIN ANALYZE, BUFFERS) of one instead. ``time`` prints,
for random past times, the wall and process-CPU time of ``versions_at``
(the query and its rows fetched into Python, the bench's "SQL" figure), the median, and the
load average. ``--sqlite FILE`` instead of ``--schema`` uses a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from projections_bench import APPEND_BATCH, DEFAULT_PG, T0, Workload

from eventstore import EventStore, open_store
from projections.dialects import dialect_for
from projections.queries import Point, has_observations, versions_at, versions_sql
from projections.runner import rebuild


def _url(args: argparse.Namespace) -> str:
    if args.sqlite:
        return f"sqlite:///{args.sqlite}"
    separator = "&" if "?" in DEFAULT_PG else "?"
    return f"{DEFAULT_PG}{separator}schema={args.schema}"


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


async def build(args: argparse.Namespace) -> None:
    if not args.sqlite:
        admin = await asyncpg.connect(DEFAULT_PG)
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {args.schema}")
        await admin.close()
    store = await open_store(_url(args))
    try:
        await store.migrate()
        workload = Workload()
        head = await store.head()
        started = time.perf_counter()
        while workload.count < head:  # resumes an interrupted build: the same events
            workload.next()
        while workload.count < args.size:
            batch = [workload.next() for _ in range(min(APPEND_BATCH, args.size - workload.count))]
            await store.append(batch)
        print(f"appended up to {args.size} events in {time.perf_counter() - started:.0f}s")
        result = await rebuild(store)
        print(f"rebuild: {result.rate:,.0f} events/s; load {_load()}")
    finally:
        await store.close()


async def time_inventory(store: EventStore, size: int, runs: int, seed: int) -> list[float]:
    dialect = dialect_for(store)
    rng = random.Random(seed)
    span = size / 10
    head = await store.head()
    walls: list[float] = []
    for _ in range(runs):
        t = T0 + timedelta(seconds=rng.uniform(0, span))
        point = Point.of_time(dialect, t, head)
        async with store.read_connection() as conn:
            wall, cpu = time.perf_counter(), time.process_time()
            rows = await versions_at(dialect, conn, point)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        walls.append(wall * 1000)
        print(f"  {len(rows)} rows: {wall * 1000:6.1f} ms wall, {cpu * 1000:6.1f} ms CPU here")
    return walls


async def explain(store: EventStore, size: int, seed: int) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the inventory at one random past time (PostgreSQL)."""
    dialect = dialect_for(store)
    t = T0 + timedelta(seconds=random.Random(seed).uniform(0, size / 10))
    point = Point.of_time(dialect, t, size)
    async with store.read_connection() as conn:
        observed = await has_observations(dialect, conn)
        sql, args = versions_sql(dialect, point, observed=observed)
        plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, args)
    print("\n".join(row[0] for row in plan))


async def time_command(args: argparse.Namespace) -> None:
    store = await open_store(_url(args))
    try:
        size = await store.head()
        if args.explain:
            await explain(store, size, args.seed)
            return
        walls = await time_inventory(store, size, args.runs, args.seed)
        print(
            f"inventory at {size:,} events: median {statistics.median(walls):.1f} ms, "
            f"min {min(walls):.1f}, max {max(walls):.1f}; load {_load()}"
        )
    finally:
        await store.close()


async def drop(args: argparse.Namespace) -> None:
    if args.sqlite:
        os.remove(args.sqlite)
        return
    admin = await asyncpg.connect(DEFAULT_PG)
    await admin.execute(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE")
    await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "time", "drop"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--schema", help="PostgreSQL schema (letters, digits, '_')")
    where.add_argument("--sqlite", help="SQLite file")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="time: print the plan instead")
    args = parser.parse_args()
    if args.schema and not args.schema.replace("_", "").isalnum():
        parser.error("--schema: letters, digits and '_' only")
    command = {"build": build, "time": time_command, "drop": drop}[args.command]
    await command(args)


if __name__ == "__main__":
    asyncio.run(main())
