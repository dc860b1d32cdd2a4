"""Collector benchmark: deep polls of a fakepve cluster of 3 nodes and 1,000 guests.

Times, against the same fake over HTTPS (run as its own process, as production would have
Proxmox VE on another host):

* **baseline**: plain proxmoxer fetching the same endpoints a deep poll reads, with the same
  concurrency (a pool of ``max_workers`` threads, one client per thread) and doing nothing
  else with the answers;
* the collector's **first deep poll** (empty log: everything is discovered);
* a **no-change deep poll** (must append nothing; its only write is the observations update);
* a **deep poll after 50 changes** (50 guests' configs changed through the API).

Overhead = collector time / baseline time - 1 (medians). Peak memory is the whole benchmark
process's peak RSS (collector, baseline client and interpreter; the fake runs elsewhere).

    .venv/bin/python bench/collector_bench.py [--guests 1000] [--nodes 3] [--repeat 5]
        [--database-url sqlite:///bench.db | postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxmoxer import ProxmoxAPI

from collectors.config import ClusterConfig
from collectors.observe import TASK_LIMIT
from collectors.service import CollectorService
from eventstore import EventStore, open_store

PASSWORD_ENV = "BENCH_PVE_PASSWORD"
PASSWORD = "secret"


def _guests(nodes: int, guests: int) -> list[dict[str, Any]]:
    names = [f"pve{i + 1}" for i in range(nodes)]
    out: list[dict[str, Any]] = []
    for index in range(guests):
        vmid = 1000 + index
        node = names[index % nodes]
        if index % 10 == 9:
            out.append(
                {"type": "lxc", "vmid": vmid, "name": f"ct{vmid}", "node": node,
                 "status": "running", "config": {"cores": 1}}
            )  # fmt: skip
            continue
        out.append(
            {
                "vmid": vmid,
                "name": f"vm{vmid}",
                "node": node,
                "status": "running" if index % 2 else "stopped",
                "config": {
                    "cores": 2,
                    "memory": 2048,
                    "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=16G",
                    "net0": f"virtio=BC:24:11:{index >> 8:02X}:{index & 255:02X}:00,bridge=vmbr0",
                    "tags": "bench",
                },
            }
        )
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_fake(workdir: Path, nodes: int, guests: int) -> tuple[subprocess.Popen[str], int, str]:
    """Run ``python -m fakepve`` on 127.0.0.1 with a certificate; (process, port, cafile)."""
    from fakepve.certs import make_cert

    certfile, keyfile, _ = make_cert(str(workdir), hosts=("127.0.0.1",))
    spec = workdir / "guests.json"
    spec.write_text(json.dumps({"guests": _guests(nodes, guests)}))
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fakepve", str(spec), "--host", "127.0.0.1", "--port", str(port),
         "--cert", certfile, "--key", keyfile, "--time-scale", "0", "--password", PASSWORD],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening" not in line:
        process.kill()
        raise SystemExit(f"fakepve did not start: {line!r}")
    return process, port, certfile


class Baseline:
    """proxmoxer and a thread pool, nothing else: the floor a deep poll cannot go under."""

    def __init__(self, port: int, cafile: str, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._local = threading.local()
        self._port, self._cafile = port, cafile

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = ProxmoxAPI(
                "127.0.0.1", port=self._port, user="root@pam", password=PASSWORD,
                verify_ssl=self._cafile, timeout=(5, 60),
            )  # fmt: skip
        return api.get(path, **params)

    async def get(self, path: str, **params: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._get, path, params)

    async def deep(self) -> int:
        """The endpoints of a deep poll; returns the number of requests."""
        status, resources = await asyncio.gather(
            self.get("cluster/status"), self.get("cluster/resources")
        )
        nodes = sorted(e["name"] for e in status if e.get("type") == "node")
        guests = [e for e in resources if e.get("type") in ("qemu", "lxc")]
        calls = []
        for guest in guests:
            base = f"nodes/{guest['node']}/{guest['type']}/{guest['vmid']}"
            calls += [
                self.get(f"{base}/config", current=1),
                self.get(f"{base}/pending"),
                self.get(f"{base}/snapshot"),
            ]
        calls += [self.get("storage"), self.get("pools"), self.get("cluster/ha/resources")]
        calls += [self.get(f"nodes/{n}/storage") for n in nodes]
        calls += [self.get(f"nodes/{n}/tasks", limit=TASK_LIMIT) for n in nodes]
        calls += [self.get(f"nodes/{n}/storage/local/content", content="backup") for n in nodes]
        await asyncio.gather(*calls)
        return 2 + len(calls)

    def close(self) -> None:
        self._pool.shutdown()


def _check(ok: bool, what: str) -> None:
    """Stop the benchmark when a poll did not do what it must (asserts vanish under -O)."""
    if not ok:
        raise SystemExit(f"benchmark check failed: {what}")


CPU: dict[str, list[float]] = {}
"""CPU seconds of this process (all threads) per measurement, by label."""


async def _timed(coro: Any, label: str) -> tuple[float, Any]:
    """Wall seconds of the awaited call (and its CPU seconds, kept in :data:`CPU`)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = await coro
    CPU.setdefault(label, []).append(time.process_time() - cpu)
    return time.perf_counter() - started, result


async def _observation_rows(store: EventStore) -> int:
    async with store.read_connection() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM observations"))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    fake, port, cafile = start_fake(workdir, args.nodes, args.guests)
    cluster = ClusterConfig(
        name="bench", host=f"127.0.0.1:{port}", user="root@pam", password_env=PASSWORD_ENV,
        verify_tls=cafile, max_workers=args.workers, read_timeout_s=60.0,
    )  # fmt: skip
    stores: list[EventStore] = []
    services: list[CollectorService] = []

    async def fresh(index: int) -> tuple[EventStore, CollectorService]:
        """An empty, migrated store (a new SQLite file, or a new PostgreSQL schema's URL)."""
        url = args.database_url or f"sqlite:///{workdir / f'bench-{index}.db'}"
        store = await open_store(url)
        await store.migrate()
        service = CollectorService(
            store, [cluster], fingerprint_key=b"bench", environ={PASSWORD_ENV: PASSWORD}
        )
        stores.append(store)
        services.append(service)
        return store, service

    baseline = Baseline(port, cafile, args.workers)
    operator = ProxmoxAPI(
        "127.0.0.1", port=port, user="root@pam", password=PASSWORD, verify_ssl=cafile, timeout=60
    )
    out: dict[str, Any] = {"guests": args.guests, "nodes": args.nodes, "workers": args.workers}
    try:
        await baseline.deep()  # warm-up: logins, connections
        phases: dict[str, list[float]] = {"first": [], "nochange": [], "changed": []}

        async def base(phase: str) -> None:
            # Interleaved with the collector's polls, so drift of the fake (it keeps a growing
            # request log, say) weighs on both sides alike.
            seconds, requests = await _timed(baseline.deep(), f"baseline_{phase}")
            phases[phase].append(seconds)
            out["requests_per_deep_poll"] = requests

        # The first deep poll, each time on an empty log (PostgreSQL: one log, so only once).
        first_times = []
        rounds = args.repeat if not args.database_url else 1
        for index in range(rounds):
            await base("first")
            store, service = await fresh(index)
            seconds, first = await _timed(service.sync("bench", deep=True), "first")
            _check(first.ok and not first.faults, f"first deep poll: {first.faults}")
            first_times.append(seconds)
        out["first_deep_s"] = statistics.median(first_times)
        out["first_events"] = first.events_appended

        nochange = []
        for _ in range(args.repeat):
            await base("nochange")
            head = await store.head()
            seconds, result = await _timed(service.sync("bench", deep=True), "nochange")
            same_head = await store.head() == head
            _check(result.ok and result.events_appended == 0 and same_head, f"no-change: {result}")
            nochange.append(seconds)
        out["nochange_deep_s"] = statistics.median(nochange)
        out["nochange_events"] = 0
        out["nochange_observation_rows"] = result.observed
        out["observation_rows"] = await _observation_rows(store)

        changed_times = []
        vms = [g for g in _guests(args.nodes, args.guests) if g.get("type") != "lxc"][:50]
        for round_ in range(args.repeat):
            await base("changed")
            for guest in vms:
                operator.nodes(guest["node"]).qemu(guest["vmid"]).config.put(
                    description=f"bench round {round_}"
                )
            seconds, result = await _timed(service.sync("bench", deep=True), "changed")
            _check(result.ok and result.events_appended >= len(vms), f"changes: {result}")
            changed_times.append(seconds)
        out["changed_deep_s"] = statistics.median(changed_times)
        out["changed_events"] = result.events_appended
        everything = [t for times in phases.values() for t in times]
        out["baseline_s"] = statistics.median(everything)
        out["baseline_min_s"] = min(everything)
        out["baseline_max_s"] = max(everything)
        for phase, times in phases.items():
            out[f"baseline_{phase}_s"] = statistics.median(times)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for phase in phases:
            ratio = out[f"{phase}_deep_s"] / out[f"baseline_{phase}_s"]
            out[f"{phase}_deep_overhead"] = ratio - 1
            # CPU of this process: the client side's own work, free of the fake's noise
            cpu, base_cpu = (
                statistics.median(CPU[phase]),
                statistics.median(CPU[f"baseline_{phase}"]),
            )
            out[f"{phase}_cpu_s"], out[f"baseline_{phase}_cpu_s"] = cpu, base_cpu
            out[f"{phase}_cpu_overhead"] = cpu / base_cpu - 1
        out["database"] = store.dialect
    finally:
        baseline.close()
        operator._store["session"].close()
        for service in services:
            await service.stop()
        for store in stores:
            await store.close()
        fake.terminate()
        fake.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=4, help="threads (ClusterConfig.max_workers)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    out = asyncio.run(run(args))
    print(json.dumps(out, indent=2))
    print()
    print(f"{out['requests_per_deep_poll']} requests per deep poll; baseline = proxmoxer only")
    print(
        "| measurement | wall time (median) | overhead | client CPU (median) | CPU overhead "
        "| events appended |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for label, phase, events in (
        ("first deep poll (discovery)", "first", out["first_events"]),
        ("no-change deep poll", "nochange", 0),
        ("deep poll after 50 changes", "changed", out["changed_events"]),
    ):
        print(
            f"| {label} | {out[phase + '_deep_s']:.2f} s "
            f"(baseline {out['baseline_' + phase + '_s']:.2f} s) "
            f"| {out[phase + '_deep_overhead']:+.0%} "
            f"| {out[phase + '_cpu_s']:.2f} s "
            f"(baseline {out['baseline_' + phase + '_cpu_s']:.2f} s) "
            f"| {out[phase + '_cpu_overhead']:+.0%} | {events} |"
        )
    print(f"\npeak RSS of the benchmark process: {out['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
