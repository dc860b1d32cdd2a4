"""Projections benchmark: rebuild rate and "as of T" lookups at 100,000 and 1,000,000 events.

Workload: 10,000 guests (config of about a dozen keys: disks, NICs, memory, ...) discovered
first, then random changes (config keys, status, locks, migrations, renames, tags, the odd
removal and comeback), one observation second per 10 events, appended in batches of 5,000.
For each size: a full ``rebuild`` (events/s), one resource at a random past time (p50/p99,
both the SQL alone, "at the database", and the whole ``resource_at`` call), the whole
10,000-resource inventory at a random past time (the SQL alone in one query, and paged through
``inventory`` 1,000 at a time), and the net change over a random hour. The lookups should stay
flat from 100,000 to 1,000,000 events: each is an index probe per resource.

Usage::

    .venv/bin/python bench/projections_bench.py                      # both backends
    .venv/bin/python bench/projections_bench.py --backends sqlite --sizes 100000
    .venv/bin/python bench/projections_bench.py --sizes 100000 --keep-log --rebuild-only
    PVETRAIL_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test ...

Results and method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.events import (
    ConfigChanged,
    Discovered,
    Event,
    FieldChange,
    LockReleased,
    LockTaken,
    Migrated,
    Removed,
    Renamed,
    StatusChanged,
    TagsChanged,
    apply_changes,
    encode,
    type_of,
)
from eventstore import EventStore, NewEvent, open_store
from projections.dialects import dialect_for
from projections.queries import Point, changes, inventory, resource_at, versions_at
from projections.runner import rebuild

DEFAULT_PG = os.environ.get(
    "PVETRAIL_BENCH_POSTGRES_URL",
    os.environ.get("PVETRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
RESOURCES = 10_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
APPEND_BATCH = 5_000
LOOKUPS = 2_000
INVENTORIES = 10


class Workload:
    """A deterministic stream of plausible events over RESOURCES guests."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.states: dict[str, dict[str, Any] | None] = {}
        self.count = 0

    def _guest(self, n: int) -> tuple[str, dict[str, Any]]:
        vmid = 100 + n
        rid = f"lab/qemu/{vmid}"
        node = f"pve{n % 8 + 1}"
        config = {
            "name": f"vm{vmid}",
            "memory": "4096",
            "cores": 2,
            "sockets": 1,
            "ostype": "l26",
            "scsihw": "virtio-scsi-single",
            "scsi0": f"local-lvm:vm-{vmid}-disk-0,iothread=1,size=32G",
            "scsi1": f"ceph:vm-{vmid}-disk-1,size=100G",
            "ide2": "none,media=cdrom",
            "net0": f"virtio=BC:24:11:{n % 256:02X}:00:01,bridge=vmbr0,tag={n % 40 + 10}",
            "boot": "order=scsi0;net0",
            "agent": "1",
        }
        state = {
            "id": rid, "cluster": "lab", "type": "qemu", "node": node, "vmid": vmid,
            "name": f"vm{vmid}", "status": "running", "tags": ["prod"], "pool": None,
            "lock": None, "config": config, "digest": f"{n:040x}",
        }  # fmt: skip
        return rid, state

    def next(self) -> NewEvent:
        n = self.count
        self.count += 1
        observed = T0 + timedelta(seconds=n / 10)
        if n < RESOURCES:
            rid, state = self._guest(n)
            self.states[rid] = state
            return self._new(rid, Discovered(state=state), observed)
        index = self.rng.randrange(RESOURCES)
        rid = f"lab/qemu/{100 + index}"
        state = self.states[rid]
        if state is None:
            rid, fresh = self._guest(index)
            self.states[rid] = fresh
            return self._new(rid, Discovered(state=fresh), observed)
        roll = self.rng.random()
        event: Event
        if roll < 0.002:
            self.states[rid] = None
            return self._new(rid, Removed(), observed)
        if roll < 0.35:
            key = self.rng.choice(["memory", "cores", "description", "onboot", "scsi1"])
            value: Any = self.rng.choice(["2048", "4096", 8192, 4, "a note", 1])
            if key == "scsi1":
                value = self.rng.choice([f"ceph:vm-{rid[9:]}-disk-1,size={n % 90 + 10}G", None])
            changes = [FieldChange(f"config.{key}", state["config"].get(key), value)]
            event = ConfigChanged(changes=changes, digest=f"{n:040x}")
        elif roll < 0.65:
            new = "stopped" if state["status"] == "running" else "running"
            event = StatusChanged(changes=[FieldChange("status", state["status"], new)])
        elif roll < 0.85:
            if state["lock"] is None:
                event = LockTaken(changes=[FieldChange("lock", None, "backup")])
            else:
                event = LockReleased(changes=[FieldChange("lock", "backup", None)])
        elif roll < 0.92:
            node = f"pve{self.rng.randrange(8) + 1}"
            event = Migrated(changes=[FieldChange("node", state["node"], node)])
        elif roll < 0.96:
            event = Renamed(changes=[FieldChange("name", state["name"], f"vm-{n}")])
        else:
            tags = sorted(self.rng.sample(["prod", "web", "db", "eu"], 2))
            event = TagsChanged(changes=[FieldChange("tags", state["tags"], tags)])
        assert hasattr(event, "changes")
        new_state = apply_changes(state, event.changes)
        self.states[rid] = new_state
        return self._new(rid, event, observed)

    @staticmethod
    def _new(rid: str, event: Event, observed: datetime) -> NewEvent:
        return NewEvent(stream_id=rid, type=type_of(event), data=encode(event),
                        observed_at=observed)  # fmt: skip


async def versions_size(store: EventStore) -> int:
    """Bytes of the versions projection (tables and indexes)."""
    async with store.read_connection() as conn:
        if store.dialect == "postgresql":
            value = await conn.fetchval(
                "SELECT pg_total_relation_size('proj_versions') "
                "+ pg_total_relation_size('proj_configs')"
            )
            return int(value)
        # the dbstat virtual table is not always compiled in: count pages per table instead
        total = 0
        names = ["proj_versions", "proj_configs"]
        objects = [
            row[0]
            for row in await conn.fetch(
                "SELECT name FROM sqlite_master WHERE tbl_name IN (?, ?)", names
            )
        ]
        try:
            for name in objects:
                row = await conn.fetchone("SELECT SUM(pgsize) FROM dbstat WHERE name = ?", (name,))
                total += int(row[0] or 0) if row else 0
        except Exception:  # no dbstat compiled in: report 0 rather than fail the run
            return 0
        return total


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(
    store: EventStore, events: int, rng: random.Random, *, rebuild_only: bool = False
) -> dict[str, float]:
    """Rebuild, then time the lookups; figures in ms (rate in events/s)."""
    cpu = time.process_time()
    result = await rebuild(store)
    figures: dict[str, float] = {
        "rebuild_rate": result.rate,
        "rebuild_s": result.seconds,
        "rebuild_cpu_s": time.process_time() - cpu,
    }
    if rebuild_only:
        return figures
    dialect = dialect_for(store)
    figures["versions_mb"] = await versions_size(store) / 2**20
    last = T0 + timedelta(seconds=events / 10)
    span = (last - T0).total_seconds()

    def past() -> datetime:
        return T0 + timedelta(seconds=rng.uniform(0, span))

    head = await store.head()
    sql_times: list[float] = []
    call_times: list[float] = []
    # The connection the read side uses for one resource (SQLite: the store's inline one, on
    # this thread; a pooled aiosqlite reader would add two thread hops to each query).
    async with store.short_reads() as conn:
        for _ in range(LOOKUPS):
            rid = f"lab/qemu/{100 + rng.randrange(RESOURCES)}"
            t = past()
            point = Point.of_time(dialect, t, head)
            start = time.perf_counter()
            await versions_at(dialect, conn, point, ids=[rid])
            sql_times.append((time.perf_counter() - start) * 1000)
    for _ in range(LOOKUPS // 4):
        rid = f"lab/qemu/{100 + rng.randrange(RESOURCES)}"
        start = time.perf_counter()
        with contextlib.suppress(Exception):
            await resource_at(store, rid, at=past())
        call_times.append((time.perf_counter() - start) * 1000)
    figures["one_sql_p50"] = percentile(sql_times, 0.5)
    figures["one_sql_p99"] = percentile(sql_times, 0.99)
    figures["one_call_p50"] = percentile(call_times, 0.5)
    figures["one_call_p99"] = percentile(call_times, 0.99)
    whole_sql: list[float] = []
    whole_call: list[float] = []
    sizes: list[int] = []
    for _ in range(INVENTORIES):
        t = past()
        point = Point.of_time(dialect, t, head)
        async with store.read_connection() as conn:
            start = time.perf_counter()
            rows = await versions_at(dialect, conn, point)
            whole_sql.append((time.perf_counter() - start) * 1000)
        sizes.append(len(rows))
        start = time.perf_counter()
        page = await inventory(store, at=t, limit=1000)
        count = len(page.items)
        while page.next_cursor:
            page = await inventory(store, limit=1000, cursor=page.next_cursor)
            count += len(page.items)
        whole_call.append((time.perf_counter() - start) * 1000)
        assert count == sizes[-1], (count, sizes[-1])
    figures["inventory_sql_median"] = statistics.median(whole_sql)
    figures["inventory_call_median"] = statistics.median(whole_call)
    figures["inventory_size"] = statistics.median(sizes)
    hour: list[float] = []
    for _ in range(5):
        since = past()
        start = time.perf_counter()
        page = await changes(store, since=since, until=since + timedelta(hours=1), limit=1000)
        hour.append((time.perf_counter() - start) * 1000)
    figures["changes_hour_median"] = statistics.median(hour)
    return figures


async def fill(store: EventStore, workload: Workload, size: int) -> None:
    """Append the workload's events up to ``size`` (none if the log already holds them)."""
    started = time.perf_counter()
    if await store.head() >= size:
        print(f"  reusing a kept log of {size} events", flush=True)
        return
    while workload.count < size:
        batch = [workload.next() for _ in range(min(APPEND_BATCH, size - workload.count))]
        await store.append(batch)
    print(f"  appended up to {size} events in {time.perf_counter() - started:.0f}s",
          flush=True)  # fmt: skip


async def run_backend(
    url: str | Callable[[int], str], sizes: list[int], *, rebuild_only: bool = False
) -> list[tuple[int, dict[str, float]]]:
    """Grow one log through ``sizes`` (``url`` a string), or, with a kept log (``url`` a
    function of the size), open each size's own log, filling it from scratch if empty."""
    results: list[tuple[int, dict[str, float]]] = []
    store: EventStore | None = None
    try:
        workload = Workload()
        rng = random.Random(7)
        for size in sizes:
            if store is None or callable(url):
                if store is not None:
                    await store.close()
                store = await open_store(url(size) if callable(url) else url)
                await store.migrate()
                if callable(url):
                    workload = Workload()
            await fill(store, workload, size)
            figures = await measure(store, size, rng, rebuild_only=rebuild_only)
            results.append((size, figures))
            print(f"  {size}: " + ", ".join(f"{k}={v:,.3f}" for k, v in figures.items()),
                  flush=True)  # fmt: skip
            # The machine's load says how far these figures can be trusted on shared cores.
            load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
            print(f"  load average (1, 5, 15 min): {load}", flush=True)
    finally:
        if store is not None:
            await store.close()
    return results


def kept_log(backend: str) -> Callable[[int], str]:
    """The URL of each size's kept log (a rebuild leaves the log itself unchanged)."""
    if backend == "sqlite":
        folder = Path(tempfile.gettempdir()) / "pvetrail-projections-bench"
        folder.mkdir(exist_ok=True)
        return lambda size: f"sqlite:///{folder / f'log-{size}.db'}"
    separator = "&" if "?" in DEFAULT_PG else "?"
    return lambda size: f"{DEFAULT_PG}{separator}schema=bench_log_{size}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument(
        "--keep-log",
        action="store_true",
        help="keep each size's log between runs (SQLite: in the temp dir, PostgreSQL: in a "
        "schema bench_log_SIZE) and rebuild it again instead of appending it anew",
    )
    parser.add_argument(
        "--rebuild-only", action="store_true", help="time the rebuild only, not the lookups"
    )
    args = parser.parse_args()
    for backend in args.backends:
        print(f"{backend}:", flush=True)
        if args.keep_log:
            await run_backend(kept_log(backend), args.sizes, rebuild_only=args.rebuild_only)
        elif backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{Path(folder) / 'bench.db'}"
                await run_backend(url, args.sizes, rebuild_only=args.rebuild_only)
        else:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect(DEFAULT_PG)
            await admin.execute(f"CREATE SCHEMA {schema}")
            try:
                separator = "&" if "?" in DEFAULT_PG else "?"
                url = f"{DEFAULT_PG}{separator}schema={schema}"
                await run_backend(url, args.sizes, rebuild_only=args.rebuild_only)
            finally:
                await admin.execute(f"DROP SCHEMA {schema} CASCADE")
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
