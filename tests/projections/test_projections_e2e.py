"""End to end: the real collectors poll fakepve (HTTPS, proxmoxer) into the log on each
backend; the projections fold it; every answer about each known time is checked.

Things change at known times: after the first deep poll (t1) the operator migrates the web VM,
resizes the batch VM and takes a snapshot (t2); then destroys the batch VM (t3).
"""

from __future__ import annotations

from typing import Any

import pytest

from eventstore import EventStore, utcnow
from projections.errors import NotFoundError
from projections.queries import changes, history, inventory, relations, resource_at
from projections.runner import ProjectionRunner, rebuild
from tests.collectors.conftest import CollectorFactory
from tests.pve import ServedPve

WEB, BATCH, DB = "lab/qemu/100", "lab/qemu/101", "lab/lxc/200"


async def test_answers_about_each_time_from_real_polls(
    store: EventStore, make_collector: CollectorFactory, operator: Any, served: ServedPve
) -> None:
    collector = make_collector()
    runner = ProjectionRunner(store)
    assert (await collector.sync("lab", deep=True)).ok
    t1 = utcnow()
    served.run(served.pve.migrate(100, "pve2"))
    operator.nodes("pve2").qemu(101).config.put(cores=4)
    operator.nodes("pve2").qemu(100).snapshot.post(snapname="after", description="after it")
    assert (await collector.sync("lab", deep=True)).ok
    t2 = utcnow()
    operator.nodes("pve2").qemu(101).delete()
    assert (await collector.sync("lab", deep=True)).ok
    t3 = utcnow()
    assert await runner.catch_up() == await store.head()

    # the inventory at each time
    first = {r.id: r for r in (await inventory(store, at=t1, limit=1000)).items}
    assert {WEB, BATCH, DB, "lab/node/pve1", "lab/pool/prod"} <= set(first)
    assert (first[WEB].node, first[WEB].pool, first[WEB].tags) == ("pve1", "prod", ["prod", "web"])
    assert first[WEB].config["cipassword"].startswith("hmac-sha256:")  # redacted in the log
    assert str(first[BATCH].config["cores"]) == "1"
    second = {r.id: r for r in (await inventory(store, at=t2, limit=1000)).items}
    assert second[WEB].node == "pve2"
    assert str(second[BATCH].config["cores"]) == "4"
    assert "lab/snapshot/qemu/100/after" in second
    third = {r.id: r for r in (await inventory(store, at=t3, limit=1000)).items}
    assert BATCH not in third
    assert set(third) == set(second) - {BATCH}
    now = await inventory(store, type="qemu")
    assert [r.id for r in now.items] == [WEB]
    assert now.items[0].last_observed_at is not None  # from the collectors' observations
    assert now.items[0].last_observed_at <= utcnow()

    # one resource, and when it did not exist
    assert (await resource_at(store, WEB, at=t1)).node == "pve1"
    with pytest.raises(NotFoundError) as gone:
        await resource_at(store, BATCH, at=t3)
    assert gone.value.first_seen is not None
    assert gone.value.last_seen is not None
    assert gone.value.first_seen <= t1 < gone.value.last_seen <= t3

    # history with the actor from the task log
    web_history = (await history(store, WEB)).items
    migrated = next(e for e in web_history if e.event == "migrated")
    assert [(c.field, c.old, c.new) for c in migrated.changes] == [("node", "pve1", "pve2")]
    assert t1 < migrated.observed_at <= t2
    assert migrated.observed_after is not None
    assert migrated.observed_after < migrated.observed_at
    assert migrated.actor is not None
    assert "qmigrate" in (migrated.actor.upid or "")
    assert [e.event for e in (await history(store, BATCH, since=t2)).items] == ["removed"]

    # the net change between the times
    net = {c.id: c for c in (await changes(store, since=t1, until=t3, limit=1000)).items}
    assert net[BATCH].change == "removed"
    assert net["lab/snapshot/qemu/100/after"].change == "created"
    assert ("node", "pve1", "pve2") in [(c.field, c.old, c.new) for c in net[WEB].changes]
    assert (await changes(store, since=t3)).items == []

    # relations then
    def edges(graph: Any) -> set[tuple[str, str, str]]:
        return {(e.from_, e.rel, e.to) for e in graph.edges}

    before = edges(await relations(store, at=t1))
    assert {
        (WEB, "runs_on", "lab/node/pve1"),
        (WEB, "uses_storage", "lab/storage/pve1/local-lvm"),
        (WEB, "attached_to", "lab/network/pve1/vmbr0"),
        (WEB, "member_of", "lab/pool/prod"),
        ("lab/snapshot/qemu/100/before-upgrade", "snapshot_of", WEB),
        ("lab/backup/local/backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst", "backup_of", WEB),
        (BATCH, "runs_on", "lab/node/pve2"),
        (DB, "attached_to", "lab/network/pve2/vmbr0"),
    } <= before
    after = edges(await relations(store, at=t2, id=WEB))
    assert (WEB, "runs_on", "lab/node/pve2") in after
    assert (WEB, "uses_storage", "lab/storage/pve2/local-lvm") in after
    assert (WEB, "runs_on", "lab/node/pve1") not in after
    assert BATCH not in {f for f, _, _ in edges(await relations(store, at=t3))}

    # and the same rows after a rebuild
    answer = await inventory(store, at=t2, limit=1000)
    await rebuild(store)
    assert (await inventory(store, at=t2, limit=1000)).items == answer.items
