"""Webhook benchmark: how long from a change made through the Proxmox VE API, announced by a
notification webhook, until its event is in the log (#14: within 3 s, the deep interval an hour).

Method: fakepve (seeded like the tests, served over HTTPS on loopback), a real collector service
and the real app on a fresh SQLite file or PostgreSQL schema, scheduled polls every hour (so only
the webhook can set a poll off). Each round changes one guest's ``description`` through proxmoxer
as root@pam, then POSTs a ``vzdump``-shaped notification for that guest's node, and waits until
the ``config_changed`` event is in the log. Latency counts from the end of the Proxmox call to
the commit seen by the log's reader; the webhook's own request is part of it. Prints p50, p99 and
max per backend, and the peer figure of the same run: one bare targeted poll (``sync`` of that
node, no webhook), whose time is the floor the webhook path adds its queueing to.

Usage::

    .venv/bin/python bench/webhook_bench.py --rounds 40 [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from proxmoxer import ProxmoxAPI  # noqa: E402

from api.app import bound_port, create_app, run_site  # noqa: E402
from collectors.service import CollectorService  # noqa: E402
from eventstore import open_store  # noqa: E402
from tests.pve import HOST, ServedPve, make_pki, seed_mixed  # noqa: E402

SECRET = "webhook-bench-secret-0123456789"
PG = os.environ.get("PVETRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _body(node: str) -> bytes:
    """A backup notification as the documented webhook template renders it."""
    return json.dumps(
        {
            "title": f"vzdump backup status ({node}): backup successful",
            "message": "",
            "severity": "info",
            "timestamp": int(time.time()),
            "fields": {"hostname": node, "type": "vzdump", "job-id": "backup-1"},
        }
    ).encode()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _database(backend: str, workdir: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'webhook-{uuid.uuid4().hex[:8]}.db'}", None
    schema = f"webhook_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    return f"{PG}{'&' if '?' in PG else '?'}schema={schema}", schema


async def run(backend: str, rounds: int, workdir: Path, pki: tuple[str, str]) -> dict[str, Any]:
    from fakepve import FakePve

    pve = FakePve(host=HOST, port=0)
    seed_mixed(pve)
    served = ServedPve(pve, *pki)
    url, schema = await _database(backend, workdir)
    store = await open_store(url)
    await store.migrate()
    cluster = served.cluster_config("lab", fast_interval_s=3600, deep_interval_s=3600)
    service = CollectorService(store, [cluster], fingerprint_key=b"k" * 32, environ=served.environ)
    app = create_app(store, collectors=service, clusters=["lab"], webhook_secret=SECRET.encode())
    runner = await run_site(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{bound_port(runner)}"
    operator = ProxmoxAPI(
        HOST, port=pve.port, user="root@pam", password="secret", verify_ssl=served.cafile
    )
    guest = next(g for g in operator.cluster.resources.get(type="vm") if g["type"] == "qemu")
    node, vmid = guest["node"], int(guest["vmid"])
    latencies: list[float] = []
    floors: list[float] = []
    try:
        for _ in range(1200):  # the first deep poll, within a minute
            if service.health()["lab"].polls_total.get("deep", 0) >= 1:
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as session:
            for n in range(rounds):
                head = await store.head()
                await asyncio.to_thread(
                    operator.nodes(node).qemu(vmid).config.post, description=f"round {n}"
                )
                changed = time.perf_counter()
                async with session.post(
                    f"{base}/api/v1/hooks/pve?cluster=lab",
                    data=_body(node),
                    headers={"X-Pvetrail-Secret": SECRET, "Content-Type": "application/json"},
                ) as answer:
                    assert answer.status == 202, await answer.text()
                while not [e async for e in store.read_all(head) if e.type == "config_changed"]:
                    await store.wait_for_events(await store.head(), 0.05)
                latencies.append(time.perf_counter() - changed)
                # The peer: one bare targeted poll of the same node, same change size.
                await asyncio.to_thread(
                    operator.nodes(node).qemu(vmid).config.post, description=f"floor {n}"
                )
                started = time.perf_counter()
                await service.sync("lab", node=node)
                floors.append(time.perf_counter() - started)
    finally:
        await runner.cleanup()
        await store.close()
        served.stop()
        if schema is not None:
            conn = await asyncpg.connect(PG)
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()
    return {"latency": latencies, "floor": floors}


def _line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name:>22}: n={len(ms)} p50 {statistics.median(ms):7.1f} ms  "
        f"p99 {percentile(ms, 0.99):7.1f} ms  max {max(ms):7.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    pki = make_pki(workdir / "pki")
    for backend in args.backends:
        result = await run(backend, args.rounds, workdir, pki)
        print(f"{backend}:")
        print(_line("change -> event", result["latency"]))
        print(_line("bare targeted poll", result["floor"]))


if __name__ == "__main__":
    asyncio.run(main())
