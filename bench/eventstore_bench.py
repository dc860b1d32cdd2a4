"""Event-store benchmark: pvetrail's store against the ``eventsourcing`` library, same workload.

Workload (defaults): 100,000 events = 1,000 streams x 100 versions, each payload ~300 bytes of
JSON, appended in batches of 1,000 (one event per stream, each with its expected version: a
poll of a large cluster); then a sample of events appended one per transaction; then every
event read back in position order and decoded; then one stream read up to a past version
(version 50 of 100), 1,000 times. The library runs the same workload through its
``SQLiteApplicationRecorder`` / ``PostgresApplicationRecorder`` and its ``Mapper`` (domain
event <-> stored event), at the same durability: SQLite WAL with ``synchronous=FULL`` on both
sides, PostgreSQL at its defaults (``synchronous_commit=on``).

Usage (needs the bench extra: ``.venv/bin/pip install -e '.[bench]'``)::

    .venv/bin/python bench/eventstore_bench.py                 # both backends, both sides
    .venv/bin/python bench/eventstore_bench.py --backends sqlite --no-library
    PVETRAIL_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test ...

Results and method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventstore import NewEvent, open_store

DEFAULT_PG = os.environ.get(
    "PVETRAIL_BENCH_POSTGRES_URL",
    os.environ.get("PVETRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
PAST_VERSION = 50


class GuestState(msgspec.Struct, frozen=True):
    """A payload shaped like a guest's observed config (~300 bytes of JSON)."""

    vmid: int
    name: str
    node: str
    status: str
    memory: int
    cores: int
    tags: list[str]
    net0: str
    scsi0: str
    description: str


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(GuestState).decode


def payload(stream: int, version: int) -> GuestState:
    return GuestState(
        vmid=100 + stream,
        name=f"guest-{stream:04d}-v{version:03d}",
        node=f"pve{stream % 7 + 1}",
        status="running" if version % 3 else "stopped",
        memory=1024 * (1 + version % 8),
        cores=1 + version % 4,
        tags=["prod", f"team-{stream % 5}"],
        net0=f"virtio=BC:24:11:{stream % 256:02X}:{version % 256:02X}:01,bridge=vmbr0,firewall=1",
        scsi0=f"local-lvm:vm-{100 + stream}-disk-0,iothread=1,size={32 + version}G",
        description="web frontend behind haproxy; owner ops@example.com",
    )


def payloads(streams: int, versions: int) -> list[list[GuestState]]:
    """Every payload of the workload, made before any timing: ``[version - 1][stream]``."""
    return [[payload(s, v) for s in range(streams)] for v in range(1, versions + 1)]


@dataclass
class Result:
    """One side's figures on one backend."""

    batched_eps: float = 0.0
    floor_eps: float = 0.0
    single_eps: float = 0.0
    single_p50_ms: float = 0.0
    single_p99_ms: float = 0.0
    read_eps: float = 0.0
    stream_p50_ms: float = 0.0
    stream_p99_ms: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)


def pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


T0 = datetime(2026, 11, 1, tzinfo=UTC)


# -- pvetrail -------------------------------------------------------------------------------
async def bench_ours(url: str, args: argparse.Namespace, work: list[list[GuestState]]) -> Result:
    result = Result()
    store = await open_store(url)
    try:
        await store.migrate()
        ids = [f"lab/qemu/{100 + s}" for s in range(args.streams)]
        # Batched appends: one batch per "poll", one event per stream.
        started = time.perf_counter()
        for version, states in enumerate(work, start=1):
            observed = T0 + timedelta(seconds=version)
            batch = [
                NewEvent(
                    stream_id=stream_id,
                    type="config_changed",
                    data=_encode(state),
                    observed_at=observed,
                    expected_version=version - 1,
                )
                for stream_id, state in zip(ids, states, strict=True)
            ]
            await store.append(batch)
        elapsed = time.perf_counter() - started
        total = args.streams * args.versions
        result.batched_eps = total / elapsed

        # Full read in position order, every payload decoded to its Struct.
        started = time.perf_counter()
        count = 0
        async for event in store.read_all(batch_size=args.read_batch):
            _decode(event.data)
            count += 1
        elapsed = time.perf_counter() - started
        assert count == total, count
        result.read_eps = count / elapsed

        # One stream at a past version, decoded.
        rng = random.Random(7)
        latencies = []
        for _ in range(args.stream_reads):
            s = rng.randrange(args.streams)
            t = time.perf_counter()
            events = await store.read_stream(f"lab/qemu/{100 + s}", until_version=PAST_VERSION)
            states = [_decode(e.data) for e in events]
            latencies.append(time.perf_counter() - t)
            assert len(states) == PAST_VERSION
        result.stream_p50_ms = pct(latencies, 0.5)
        result.stream_p99_ms = pct(latencies, 0.99)

        # One event per transaction (bound by the disk flush): a sample.
        latencies = []
        started = time.perf_counter()
        for i in range(args.single):
            event = NewEvent(
                stream_id=f"single/{i}",
                type="config_changed",
                data=_encode(payload(i, 1)),
                observed_at=T0,
                expected_version=0,
            )
            t = time.perf_counter()
            await store.append([event])
            latencies.append(time.perf_counter() - t)
        result.single_eps = args.single / (time.perf_counter() - started)
        result.single_p50_ms = pct(latencies, 0.5)
        result.single_p99_ms = pct(latencies, 0.99)
    finally:
        await store.close()
    return result


# -- the eventsourcing library --------------------------------------------------------------
@functools.cache
def _library_event_class() -> type[Any]:
    """The library's event class, made once (its topic registry refuses a second one)."""
    from eventsourcing.domain import DomainEvent

    @dataclass(frozen=True)
    class GuestObserved(DomainEvent):
        state: dict[str, Any]

    GuestObserved.__module__ = __name__
    GuestObserved.__qualname__ = "GuestObserved"
    globals()["GuestObserved"] = GuestObserved
    return GuestObserved


def _library_mapper() -> Any:
    from eventsourcing.persistence import (
        DatetimeAsISO,
        DecimalAsStr,
        JSONTranscoder,
        Mapper,
        UUIDAsHex,
    )

    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def bench_library(recorder: Any, args: argparse.Namespace, work: list[list[GuestState]]) -> Result:
    """The same workload through an eventsourcing ApplicationRecorder and Mapper."""
    event_class = _library_event_class()
    mapper = _library_mapper()
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, f"lab/qemu/{100 + s}") for s in range(args.streams)]
    result = Result()
    # The library's events take plain dicts: converted before timing, as ours are Structs.
    states = [[msgspec.to_builtins(state) for state in row] for row in work]

    started = time.perf_counter()
    for version, row in enumerate(states, start=1):
        observed = T0 + timedelta(seconds=version)
        stored = [
            mapper.to_stored_event(
                event_class(
                    originator_id=originator_id,
                    originator_version=version,
                    timestamp=observed,
                    state=state,
                )
            )
            for originator_id, state in zip(ids, row, strict=True)
        ]
        recorder.insert_events(stored)
    total = args.streams * args.versions
    result.batched_eps = total / (time.perf_counter() - started)

    started = time.perf_counter()
    count = 0
    start = 1
    while True:
        notifications = recorder.select_notifications(start, args.read_batch)
        if not notifications:
            break
        for n in notifications:
            mapper.to_domain_event(n)
        count += len(notifications)
        start = notifications[-1].id + 1
    result.read_eps = count / (time.perf_counter() - started)
    assert count == total, count

    rng = random.Random(7)
    latencies = []
    for _ in range(args.stream_reads):
        s = rng.randrange(args.streams)
        t = time.perf_counter()
        stored_events = recorder.select_events(ids[s], lte=PAST_VERSION)
        domain = [mapper.to_domain_event(e) for e in stored_events]
        latencies.append(time.perf_counter() - t)
        assert len(domain) == PAST_VERSION
    result.stream_p50_ms = pct(latencies, 0.5)
    result.stream_p99_ms = pct(latencies, 0.99)

    latencies = []
    started = time.perf_counter()
    for i in range(args.single):
        event = event_class(
            originator_id=uuid.uuid4(),
            originator_version=1,
            timestamp=T0,
            state=msgspec.to_builtins(payload(i, 1)),
        )
        t = time.perf_counter()
        recorder.insert_events([mapper.to_stored_event(event)])
        latencies.append(time.perf_counter() - t)
    result.single_eps = args.single / (time.perf_counter() - started)
    result.single_p50_ms = pct(latencies, 0.5)
    result.single_p99_ms = pct(latencies, 0.99)
    return result


def library_sqlite(path: str, args: argparse.Namespace, work: list[list[GuestState]]) -> Result:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(path)
    # Same durability as pvetrail: FULL, set explicitly on every connection the library's
    # pool makes. (It is also this build's default: strace shows one fdatasync per commit on
    # both sides.)
    pool = datastore.pool
    make_connection = pool._create_connection

    def full_durability() -> Any:
        connection = make_connection()
        connection._sqlite_conn.execute("PRAGMA synchronous=FULL")
        return connection

    pool._create_connection = full_durability  # type: ignore[method-assign]
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    try:
        result = bench_library(recorder, args, work)
    finally:
        datastore.close()
    result.notes.append("library SQLite connections set to PRAGMA synchronous=FULL")
    return result


def library_postgres(
    url: str, schema: str, args: argparse.Namespace, work: list[list[GuestState]]
) -> Result:
    from urllib.parse import urlsplit

    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = urlsplit(url)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        schema=schema,
        pool_size=2,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    try:
        return bench_library(recorder, args, work)
    finally:
        datastore.close()


def sqlite_floor(path: str, work: list[list[GuestState]]) -> float:
    """SQLite's own cost for the batched rows: plain ``sqlite3``, rows sealed before timing.

    The same schema, settings (durability, page cache, WAL checkpoints) and batches as
    pvetrail's append, minus everything pvetrail does in Python (hashing, versions, stream
    keys, asyncio): the ceiling any SQLite store of this schema could reach on this machine.
    """
    import sqlite3

    from eventstore import GENESIS_HASH
    from eventstore.sqlite import (
        _INSERT,
        _INSERT_STREAM,
        CACHE_KIB,
        WAL_PAGES,
        _event_to_row,
        split_statements,
    )
    from eventstore.store import seal_batch

    ids = [f"lab/qemu/{100 + s}" for s in range(len(work[0]))]
    batches: list[list[tuple[Any, ...]]] = []
    head, head_hash = 0, GENESIS_HASH
    for version, states in enumerate(work, start=1):
        news = [
            NewEvent(stream_id=i, type="config_changed", data=_encode(st), observed_at=T0)
            for i, st in zip(ids, states, strict=True)
        ]
        sealed = seal_batch(
            news,
            head_position=head,
            head_hash=head_hash,
            current_versions=dict.fromkeys(ids, version - 1),
            recorded_at=T0,
        )
        head, head_hash = sealed[-1].position, sealed[-1].hash
        batches.append([_event_to_row(e, key) for key, e in enumerate(sealed, start=1)])
    streams = [(key, stream_id) for key, stream_id in enumerate(ids, start=1)]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
    schema = (Path(__file__).resolve().parents[1] / "migrations/sqlite/0001_events.sql").read_text()
    for statement in split_statements(schema):
        conn.execute(statement)
    started = time.perf_counter()
    for rows in batches:
        conn.execute("BEGIN IMMEDIATE")
        if streams:  # the first batch creates the streams, as pvetrail's does
            conn.executemany(_INSERT_STREAM, streams)
            streams = []
        conn.executemany(_INSERT, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return sum(len(b) for b in batches) / elapsed


# -- running --------------------------------------------------------------------------------
async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_backend(backend: str, args: argparse.Namespace) -> tuple[Result, Result | None]:
    work = payloads(args.streams, args.versions)
    if backend == "sqlite":
        # On the disk the repository is on (not a tmpfs): the flushes are real.
        with tempfile.TemporaryDirectory(prefix="bench-", dir=args.dir) as folder:
            ours = asyncio.run(bench_ours(f"sqlite:///{folder}/ours.db", args, work))
            ours.floor_eps = sqlite_floor(f"{folder}/floor.db", work)
            library = (
                None if args.no_library else library_sqlite(f"{folder}/library.db", args, work)
            )
        return ours, library
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    lib_schema = f"{schema}_lib"
    asyncio.run(_admin(args.postgres_url, f"CREATE SCHEMA {schema}; CREATE SCHEMA {lib_schema}"))
    try:
        separator = "&" if "?" in args.postgres_url else "?"
        ours = asyncio.run(bench_ours(f"{args.postgres_url}{separator}schema={schema}", args, work))
        library = (
            None if args.no_library else library_postgres(args.postgres_url, lib_schema, args, work)
        )
    finally:
        asyncio.run(
            _admin(
                args.postgres_url,
                f"DROP SCHEMA {schema} CASCADE; DROP SCHEMA {lib_schema} CASCADE",
            )
        )
    return ours, library


ROWS: list[tuple[str, Callable[[Result], float], str, bool]] = [
    ("append, batches of 1,000", lambda r: r.batched_eps, "events/s", True),
    ("append, one per transaction", lambda r: r.single_eps, "events/s", True),
    ("  latency p50", lambda r: r.single_p50_ms, "ms", False),
    ("  latency p99", lambda r: r.single_p99_ms, "ms", False),
    ("full read, decoded", lambda r: r.read_eps, "events/s", True),
    (f"stream at version {PAST_VERSION}, p50", lambda r: r.stream_p50_ms, "ms", False),
    (f"stream at version {PAST_VERSION}, p99", lambda r: r.stream_p99_ms, "ms", False),
]


def report(backend: str, ours: Result, library: Result | None) -> None:
    print(f"\n== {backend} ==")
    print(f"{'':34} {'pvetrail':>12} {'eventsourcing':>14} {'ratio':>7}")
    for label, get, unit, higher_better in ROWS:
        mine = get(ours)
        line = f"{label:34} {mine:12,.{1 if unit == 'ms' else 0}f}"
        if library is not None:
            theirs = get(library)
            ratio = (mine / theirs if higher_better else theirs / mine) if mine and theirs else 0
            line += f" {theirs:14,.{1 if unit == 'ms' else 0}f} {ratio:6.1f}x"
        print(f"{line}  {unit}")
        if label.startswith("append, batches") and ours.floor_eps:
            print(
                f"{'  raw sqlite3, rows pre-sealed':34} {ours.floor_eps:12,.0f}"
                f"{'':23}  events/s  (SQLite's own ceiling for these batches)"
            )
    for note in ours.notes + (library.notes if library else []):
        print(f"  ({note})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--single", type=int, default=1000, help="one-per-transaction sample")
    parser.add_argument("--stream-reads", type=int, default=1000)
    parser.add_argument("--read-batch", type=int, default=10_000)
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument(
        "--dir", default=str(Path(__file__).resolve().parent), help="where SQLite files go"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the workload N times; report each best"
    )
    parser.add_argument("--no-library", action="store_true", help="skip the eventsourcing runs")
    args = parser.parse_args(argv)
    total = args.streams * args.versions
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    print(
        f"{total:,} events ({args.streams:,} streams x {args.versions}), payload "
        f"~{len(_encode(payload(1, 1)))} bytes; {args.single:,} single appends; "
        f"{args.stream_reads:,} stream reads; best of {args.repeat}; "
        f"Python {sys.version.split()[0]}"
    )
    for backend in args.backends.split(","):
        runs = [run_backend(backend, args) for _ in range(args.repeat)]
        ours = best([r[0] for r in runs])
        library = None if args.no_library else best([r[1] for r in runs if r[1] is not None])
        report(backend, ours, library)
    return 0


def best(results: Sequence[Result]) -> Result:
    """Each figure's best over the repeats (the same rule for both sides): on a shared machine
    the best run is the one least disturbed by other work."""
    merged = Result(notes=results[0].notes)
    for field in dataclasses.fields(Result):
        if field.name == "notes":
            continue
        values = [getattr(r, field.name) for r in results]
        setattr(merged, field.name, min(values) if field.name.endswith("_ms") else max(values))
    return merged


if __name__ == "__main__":
    sys.exit(main())
