"""Config plans proved by execution against fakepve, on SQLite and PostgreSQL: record the
target, change the guest through the API as another user would, observe, plan back, run every
step with proxmoxer as given, observe again, and compare with the target."""

from __future__ import annotations

from typing import Any

from eventstore import EventStore, utcnow
from tests.collectors.conftest import CollectorFactory
from tests.rollback.rollback_helpers import (
    differences,
    execute,
    observe,
    plan,
    state,
)

WEB, BATCH, DB = "lab/qemu/100", "lab/qemu/101", "lab/lxc/200"


async def test_a_stopped_guest_goes_back_in_one_put_carrying_the_digest(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    target = await state(store, BATCH)
    operator.nodes("pve2").qemu(101).config.put(
        cores=4, memory=4096, description="resized for the batch run", onboot=1
    )
    await observe(store, collector)
    changed = await state(store, BATCH)
    assert sorted(differences(target, changed)) == ["cores", "description", "memory", "onboot"]

    found = await plan(store, BATCH, at=t)
    assert found.blockers == []
    assert found.based_on_digest == changed.digest
    [step] = found.steps
    assert (step.order, step.action, step.method) == (1, "config", "PUT")
    assert step.path == "/nodes/pve2/qemu/101/config"
    assert step.params == {
        "cores": target.config["cores"],
        "memory": target.config["memory"],
        "delete": "description,onboot",
        "digest": changed.digest,
    }
    assert not step.disruptive
    assert not step.requires_reboot

    execute(operator, found)
    await observe(store, collector)
    assert differences(target, await state(store, BATCH)) == []
    again = await plan(store, BATCH, at=t)
    assert (again.steps, again.blockers) == ([], [])
    assert again.summary.startswith("nothing to do")
