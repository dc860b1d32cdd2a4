"""Helpers of the API and CLI tests: a small, known history written with the collectors'
vocabulary, and :func:`wait_for`, the one way these tests wait for something to happen.

Times are seconds after T0 (in the past, so they are never "the future"):

* 10: web (``lab/qemu/100``) discovered on pve1, tags prod, memory 2048; db (``lab/qemu/101``)
  discovered on pve1; node pve1 and pve2 discovered.
* 20: web memory 2048 -> 4096, by root@pam (observed after 15).
* 30: web migrated to pve2, by alice@pve (observed after 25).
* 60: db removed (last seen at 55).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from collectors.events import ConfigChanged, Discovered, FieldChange, Migrated, Removed
from eventstore import Actor, EventStore
from projections.runner import ProjectionRunner
from tests.projections.projection_helpers import T0, at, guest_state, new

__all__ = ["T0", "at", "new"]

T = TypeVar("T")

WAIT_S = 60.0
"""How long :func:`wait_for` waits: far beyond what any condition needs on a loaded machine.
It bounds a wait for something that never happens; it is not a measure of speed."""

WEB = "lab/qemu/100"
DB = "lab/qemu/101"
ROOT = Actor(user="root@pam", upid="UPID:pve1:0000A:0000B:6650A0B4:qmconfig:100:root@pam:")
ALICE = Actor(user="alice@pve", upid="UPID:pve1:0000C:0000D:6650A0BE:qmigrate:100:alice@pve:")


def iso(seconds: float) -> str:
    """T0 plus ``seconds`` as the API writes times."""
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def guest(rid: str, name: str, **fields: Any) -> dict[str, Any]:
    """A guest's whole state: two disks' worth of config, a VLAN-tagged NIC, digest d1."""
    vmid = rid.rsplit("/", 1)[1]
    config = {
        "name": name,
        "memory": "2048",
        "cores": 2,
        "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=32G",
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20",
    }
    return guest_state(rid, **{"name": name, "config": config, "digest": "d1", **fields})


def node(name: str) -> dict[str, Any]:
    return {
        "id": f"lab/node/{name}",
        "cluster": "lab",
        "type": "node",
        "node": name,
        "vmid": None,
        "name": name,
        "status": "online",
        "tags": [],
        "pool": None,
        "lock": None,
        "config": {},
        "digest": None,
    }


async def seed_history(store: EventStore) -> None:
    """Append the history above and bring the projections up to date."""
    await store.append(
        [
            new("lab/node/pve1", Discovered(state=node("pve1")), 10),
            new("lab/node/pve2", Discovered(state=node("pve2")), 10),
            new(WEB, Discovered(state=guest(WEB, "web", tags=["prod"])), 10),
            new(DB, Discovered(state=guest(DB, "db")), 10),
        ]
    )
    await store.append(
        [
            new(
                WEB,
                ConfigChanged(changes=[FieldChange("config.memory", "2048", "4096")], digest="d2"),
                20,
                observed_after=15,
                actor=ROOT,
            )
        ]
    )
    await store.append(
        [
            new(
                WEB,
                Migrated(changes=[FieldChange("node", "pve1", "pve2")]),
                30,
                observed_after=25,
                actor=ALICE,
            )
        ]
    )
    await store.append([new(DB, Removed(), 60, observed_after=55)])
    await ProjectionRunner(store).catch_up()


async def wait_for(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    timeout: float = WAIT_S,
    interval: float = 0.05,
) -> T:
    """Call ``check()`` until it returns something truthy, and return that; fail the test,
    naming ``what`` it waited for, if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(interval)
