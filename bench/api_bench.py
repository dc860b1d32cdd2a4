"""HTTP API benchmark: the running server, driven from this separate process on loopback.

Workload: the projections benchmark's (``bench/projections_bench.py``): 10,000 guests, then
random changes, to 1,000,000 events (one observation second per 10 events, so about 28 hours
of history); the projections are caught up before the server starts. The server is
``pvetrail serve`` (no clusters) as its own process. This process mixes three routes:

* ``resource``: ``GET /api/v1/resources/{id}?at=T``, a random guest at a random past time;
* ``history``: ``GET /api/v1/resources/{id}/history?limit=100``, a random guest;
* ``inventory``: ``GET /api/v1/resources?at=T&limit=100``, the first page at a random time;

once closed-loop (``--clients`` workers, each sending its next request when the last answered:
the throughput reached) and once open-loop (``--rate`` requests/s on a fixed schedule; latency
is measured from when a request was due, so a server that falls behind shows it instead of
slowing the load down); then open-loop again with resource-at-T alone, the target's route.
Each phase lasts ``--duration`` seconds. A 404 of ``resource`` (the guest did not exist then)
is an answer; an error is a 5xx, a 400/422, a refused connection or a timeout.
The server's resident memory is sampled every second.

Usage::

    .venv/bin/python bench/api_bench.py                         # both backends, 1,000,000 events
    .venv/bin/python bench/api_bench.py --backends sqlite --events 100000 --duration 10

The database is kept between runs (``--cache-dir``; PostgreSQL: schema ``api_bench_N``), so
only the first run pays for the append and the projection. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from projections_bench import RESOURCES, T0, Workload  # noqa: E402  (the same workload)

from eventstore import format_time, open_store  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

DEFAULT_PG = os.environ.get(
    "PVETRAIL_BENCH_POSTGRES_URL",
    os.environ.get("PVETRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
APPEND_BATCH = 5_000
ROUTES = ("resource", "history", "inventory")


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- the database ------------------------------------------------------------------------------
async def prepare(url: str, events: int) -> None:
    """Append the workload up to ``events`` (if not there yet) and catch the projections up."""
    store = await open_store(url)
    try:
        await store.migrate()
        head = await store.head()
        if head not in (0, events):
            raise SystemExit(f"{url} holds {head} events, not {events}: use another cache")
        if head == 0:
            workload = Workload()
            started = time.perf_counter()
            while workload.count < events:
                size = min(APPEND_BATCH, events - workload.count)
                await store.append([workload.next() for _ in range(size)])
                if workload.count % 100_000 == 0:
                    print(f"  appended {workload.count:,}", flush=True)
            print(f"  appended {events:,} events in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        await ProjectionRunner(store, batch_size=5_000).catch_up()
        print(f"  projections caught up in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        await store.close()


async def postgres_url(events: int) -> str:
    schema = f"api_bench_{events}"
    conn = await asyncpg.connect(DEFAULT_PG)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    finally:
        await conn.close()
    separator = "&" if "?" in DEFAULT_PG else "?"
    return f"{DEFAULT_PG}{separator}schema={schema}"


# -- the server --------------------------------------------------------------------------------
class Server:
    """``pvetrail serve`` as a subprocess on a free loopback port."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.rss: list[float] = []

    async def start(self) -> None:
        env = {
            **os.environ,
            "PVETRAIL_DATABASE_URL": self.database_url,
            "PVETRAIL_LISTEN": "127.0.0.1:0",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("PVETRAIL_CONFIG", None)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api",
            "serve",
            "--log-level",
            "WARNING",
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 120)).decode()
        if not line.startswith("pvetrail: serving on "):
            raise SystemExit(f"serve did not start: {line!r}")
        self.url = line.split()[-1]

    def sample_rss(self) -> float:
        """The server's resident memory in MiB."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    async def watch_memory(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss.append(self.sample_rss())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 30)


# -- the load ----------------------------------------------------------------------------------
class Requests:
    """Random requests of the three routes (or of ``only`` one), over the workload's guests
    and time span."""

    def __init__(self, events: int, seed: int, only: str | None = None) -> None:
        self.rng = random.Random(seed)
        self.routes = (only,) if only else ROUTES
        self.span = events / 10  # seconds of history (one observation second per 10 events)

    def past(self) -> str:
        return format_time(T0 + timedelta(seconds=self.rng.uniform(0, self.span)))

    def guest(self) -> str:
        return f"lab/qemu/{100 + self.rng.randrange(RESOURCES)}"

    def next(self) -> tuple[str, str]:
        route = self.rng.choice(self.routes)
        if route == "resource":
            return route, f"/api/v1/resources/{self.guest()}?at={self.past()}"
        if route == "history":
            return route, f"/api/v1/resources/{self.guest()}/history?limit=100"
        return route, f"/api/v1/resources?at={self.past()}&limit=100"


class Tally:
    """Latencies and outcomes by route."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    async def send(
        self, http: aiohttp.ClientSession, url: str, route: str, path: str, due: float
    ) -> None:
        try:
            async with http.get(url + path) as response:
                await response.read()
                outcome = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        self.latency[route].append(time.perf_counter() - due)
        self.status[route][outcome] += 1

    def errors(self) -> int:
        return sum(
            n
            for by in self.status.values()
            for outcome, n in by.items()
            if not outcome.isdigit() or int(outcome) >= 500 or outcome in ("400", "422")
        )

    def report(self, seconds: float) -> list[str]:
        lines = []
        total = sum(len(v) for v in self.latency.values())
        lines.append(f"    {total:,} requests in {seconds:.0f} s: {total / seconds:,.0f}/s")
        for route in ROUTES:
            values = [v * 1000 for v in self.latency[route]]
            statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.status[route].items()))
            lines.append(
                f"    {route:<9} n={len(values):>7,}  p50 {percentile(values, 0.5):7.1f} ms  "
                f"p99 {percentile(values, 0.99):7.1f} ms  max {max(values, default=0):7.1f} ms"
                f"  ({statuses})"
            )
        lines.append(f"    errors: {self.errors()}")
        return lines


async def closed_loop(url: str, requests: Requests, clients: int, duration: float) -> Tally:
    tally = Tally()
    deadline = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                route, path = requests.next()
                await tally.send(http, url, route, path, time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(clients)))
    return tally


async def open_loop(url: str, requests: Requests, rate: float, duration: float) -> Tally:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=500)
    timeout = aiohttp.ClientTimeout(total=30)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        start = time.perf_counter()
        total = int(rate * duration)
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            route, path = requests.next()
            task = asyncio.create_task(tally.send(http, url, route, path, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return tally


async def run_backend(name: str, url: str, args: argparse.Namespace) -> list[str]:
    print(f"{name}: preparing {args.events:,} events", flush=True)
    await prepare(url, args.events)
    server = Server(url)
    await server.start()
    lines = [f"{name} ({args.events:,} events over {RESOURCES:,} resources):"]
    try:
        stop = asyncio.Event()
        watcher = asyncio.create_task(server.watch_memory(stop))
        # Warm the server's caches and connections a little before measuring.
        await closed_loop(server.url, Requests(args.events, 0), 10, 3)
        phases: list[tuple[str, Callable[[], Any]]] = [
            (
                f"closed loop, {args.clients} clients",
                lambda: closed_loop(
                    server.url, Requests(args.events, 1), args.clients, args.duration
                ),
            ),
            (
                f"open loop, {args.rate:,.0f} requests/s",
                lambda: open_loop(server.url, Requests(args.events, 2), args.rate, args.duration),
            ),
            (
                f"open loop, {args.rate:,.0f} requests/s of resource-at-T only (the target)",
                lambda: open_loop(
                    server.url, Requests(args.events, 3, "resource"), args.rate, args.duration
                ),
            ),
        ]
        chosen = [phases[("closed", "open", "target").index(name)] for name in args.phases]
        for title, phase in chosen:
            rss_before = server.sample_rss()
            started = time.perf_counter()
            tally = await phase()
            elapsed = time.perf_counter() - started
            rss_after = server.sample_rss()
            lines.append(f"  {title}:")
            lines += [line for line in tally.report(elapsed if "closed" in title else args.duration)
                      if " n=      0 " not in line]  # fmt: skip
            lines.append(f"    server RSS {rss_before:.0f} MiB -> {rss_after:.0f} MiB")
            print("\n".join(lines[-7:]), flush=True)
        stop.set()
        await watcher
        lines.append(
            f"  server RSS over the run: min {min(server.rss):.0f} MiB, "
            f"max {max(server.rss):.0f} MiB, last {server.rss[-1]:.0f} MiB"
        )
    finally:
        await server.stop()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument(
        "--cache-dir", default=os.path.join(tempfile.gettempdir(), "pvetrail-api-bench")
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["closed", "open", "target"],
        choices=["closed", "open", "target"],
    )
    args = parser.parse_args()
    report: list[str] = []
    for backend in args.backends:
        if backend == "sqlite":
            os.makedirs(args.cache_dir, exist_ok=True)
            url = f"sqlite:///{Path(args.cache_dir) / f'api-bench-{args.events}.db'}"
        else:
            url = await postgres_url(args.events)
        report += await run_backend(backend, url, args)
    print("\n".join(report))


if __name__ == "__main__":
    asyncio.run(main())
