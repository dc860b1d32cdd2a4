"""A small history of a fakepve recorded the way ``serve`` records it: by the real collectors
polling it (shared by the schemathesis, ``pvetrail mcp`` and SQL views tests)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from collectors.config import ClusterConfig
from collectors.service import CollectorService
from eventstore import open_store, utcnow
from projections.runner import ProjectionRunner
from tests.pve import ServedPve

KEY = b"k" * 32


def cluster(pve: ServedPve) -> ClusterConfig:
    # No scheduled poll while the test runs (only the app's first ones, at its start).
    return pve.cluster_config("lab", fast_interval_s=3600, deep_interval_s=3600)


async def fill(
    database_url: str, pve: ServedPve, proxmox: Any, *, lagging: bool = False
) -> list[datetime]:
    """Record a small history of the fake cluster: discoveries, a migration of VM 100, a
    config change of VM 101, a snapshot ``after`` of VM 100, then the removal of VM 101, and
    project it. With ``lagging``, one more change (VM 100's memory) is then polled into the
    log but not projected, as when no ``serve`` keeps the projections current. Returns the
    times between the polls: [before the first, after it, after the changes' poll, after the
    removal's]."""
    store = await open_store(database_url)
    collector = CollectorService(store, [cluster(pve)], fingerprint_key=KEY, environ=pve.environ)
    times = [utcnow()]
    try:
        await store.migrate()
        assert (await collector.sync("lab", deep=True)).ok
        times.append(utcnow())
        pve.run(pve.pve.migrate(100, "pve2"))
        await asyncio.to_thread(proxmox.nodes("pve2").qemu(101).config.put, cores=4)
        await asyncio.to_thread(
            proxmox.nodes("pve2").qemu(100).snapshot.post, snapname="after", description="x"
        )
        assert (await collector.sync("lab", deep=True)).ok
        times.append(utcnow())
        await asyncio.to_thread(proxmox.nodes("pve2").qemu(101).delete)
        assert (await collector.sync("lab", deep=True)).ok
        times.append(utcnow())
        assert await ProjectionRunner(store).catch_up() == await store.head()
        if lagging:
            await asyncio.to_thread(proxmox.nodes("pve2").qemu(100).config.put, memory=4096)
            assert (await collector.sync("lab", deep=True)).ok
    finally:
        await collector.stop()
        await store.close()
    return times
