"""Polls against a seeded fakepve over HTTPS, on SQLite and PostgreSQL: what gets appended.

Every change is made the way an operator makes it (through the API with proxmoxer, or with
fakepve's in-process API where the fake cannot do it through the API: migrate, backups).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from collector_helpers import not_tasks, read_events, summary, until

from collectors import observations
from collectors.state import Known
from eventstore import EventStore, open_store
from tests.collectors.conftest import CollectorFactory
from tests.pve import ServedPve
from tests.waiting import GENEROUS_S

GUESTS = ("lab/qemu/100", "lab/qemu/101", "lab/lxc/200")


async def test_first_deep_poll_discovers_a_mixed_cluster(
    store: EventStore, make_collector: CollectorFactory
) -> None:
    result = await make_collector().sync("lab", deep=True)
    assert result.ok
    assert not result.faults
    events = await read_events(store)
    by_stream = {e.stream: e for e in not_tasks(events)}
    assert set(by_stream) == {
        *GUESTS,
        "lab/node/pve1",
        "lab/node/pve2",
        "lab/storage/pve1/local",
        "lab/storage/pve1/local-lvm",
        "lab/storage/pve2/local",
        "lab/storage/pve2/local-lvm",
        "lab/pool/prod",
        "lab/snapshot/qemu/100/before-upgrade",
        "lab/backup/local/backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst",
    }
    assert result.events_appended == len(events)
    assert result.counts["discovered"] == 10
    # one batch: consecutive positions, one correlation id, first version of every stream
    assert {e.recorded.correlation_id for e in events} == {events[0].recorded.correlation_id}
    assert all(e.recorded.version == 1 for e in events)
    assert all(e.recorded.observed_after is None and e.actor is None for e in events)

    web = by_stream["lab/qemu/100"].event.state  # type: ignore[attr-defined]
    assert web["vmid"] == 100
    assert web["node"] == "pve1"
    assert web["status"] == "running"
    assert web["name"] == "web"
    assert web["tags"] == ["prod", "web"]
    assert web["pool"] == "prod"
    assert web["config"]["net0"].startswith("virtio=BC:24:11:00:01:00,bridge=vmbr0")
    assert web["config"]["cipassword"].startswith("hmac-sha256:")
    assert web["config"]["sshkeys"].startswith("ssh-ed25519")  # public keys are not secrets
    assert web["digest"]
    assert web["pending"] == {}
    assert web["lock"] is None
    db = by_stream["lab/lxc/200"].event.state  # type: ignore[attr-defined]
    assert db["type"] == "lxc"
    assert db["vmid"] == 200
    assert db["config"]["hostname"] == "db"
    node = by_stream["lab/node/pve2"].event.state  # type: ignore[attr-defined]
    assert node["status"] == "online"
    assert node["node"] == "pve2"
    assert node["vmid"] is None
    storage = by_stream["lab/storage/pve1/local-lvm"].event.state  # type: ignore[attr-defined]
    assert storage["plugintype"] == "lvmthin"
    assert storage["shared"] == 0
    assert storage["content"] == ["images", "rootdir"]
    assert storage["config"]["vgname"] == "pve"
    snap = by_stream["lab/snapshot/qemu/100/before-upgrade"]
    assert snap.type == "snapshot_created"
    assert snap.event.state["guest"] == "lab/qemu/100"  # type: ignore[attr-defined]
    assert snap.event.state["description"] == "before the upgrade"  # type: ignore[attr-defined]
    backup = by_stream["lab/backup/local/backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst"]
    state = backup.event.state  # type: ignore[attr-defined]
    assert backup.type == "backup_seen"
    assert state["guest"] == "lab/qemu/100"
    assert state["vmid"] == 100
    assert state["storage"] == "local"
    assert state["size"] == 4096
    assert state["volid"] == "local:backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst"
    pool = by_stream["lab/pool/prod"].event.state  # type: ignore[attr-defined]
    assert pool["members"] == ["lab/qemu/100"]

    seen = await observations.load(store, "lab")
    assert set(by_stream) <= set(seen)
    assert all(deep is not None for _fast, deep in seen.values())


async def test_a_poll_that_sees_no_change_appends_nothing(
    store: EventStore, make_collector: CollectorFactory
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    before = await observations.load(store, "lab")
    for deep in (True, False, True):
        result = await collector.sync("lab", deep=deep)
        assert result.ok
        assert result.events_appended == 0
        assert result.observed > 0
    assert await store.head() == head
    after = await observations.load(store, "lab")
    # its only write: the observation times moved on
    assert after["lab/qemu/100"][0] > before["lab/qemu/100"][0]  # type: ignore[operator]
    assert after["lab/qemu/100"][1] > before["lab/qemu/100"][1]  # type: ignore[operator]


async def test_config_change_of_a_stopped_and_a_running_guest(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    operator.nodes("pve2").qemu(101).config.put(cores=4, delete="memory")
    operator.nodes("pve1").qemu(100).config.put(cores=8, description="web server")
    result = await collector.sync("lab", deep=True)
    events = not_tasks(await read_events(store, head))
    assert summary(events) == [
        ("lab/qemu/100", "config_changed"),
        ("lab/qemu/100", "pending_change_seen"),
        ("lab/qemu/101", "config_changed"),
    ]
    assert result.events_appended == len(await read_events(store, head))
    stopped = events[2].changes()
    assert stopped["config.cores"] == (1, "4")  # as Proxmox returns each value
    assert stopped["config.memory"] == ("1024", None)  # a removed key
    assert "digest" in stopped
    running_config, running_pending = events[0].changes(), events[1].changes()
    assert running_config["config.description"] == (None, "web server")  # hot-plugged
    assert "config.cores" not in running_config
    assert running_pending == {"pending.cores": (None, "8")}  # applied at the next boot
    assert all(e.recorded.observed_after is not None for e in events)
    assert all(e.recorded.observed_after < e.recorded.observed_at for e in events)  # type: ignore[operator]

    # The reboot through the API applies it: config changes, pending goes away.
    head = await store.head()
    operator.nodes("pve1").qemu(100).status.reboot.post()
    await collector.sync("lab", deep=True)
    events = not_tasks(await read_events(store, head))
    assert summary(events) == [
        ("lab/qemu/100", "config_changed"),
        ("lab/qemu/100", "pending_change_applied"),
    ]
    assert events[0].changes()["config.cores"] == (2, "8")
    assert events[1].changes() == {"pending.cores": ("8", None)}
    assert events[0].actor is not None
    assert events[0].actor.user == "root@pam"


async def test_rename_tags_migrate_and_locks_from_fast_polls(
    store: EventStore, make_collector: CollectorFactory, operator: Any, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    operator.nodes("pve2").qemu(101).config.put(name="batch2", tags="nightly;batch")
    served.run(served.pve.migrate(100, "pve2"))
    served.pve.snapshot_lock(101, "backup")
    result = await collector.sync("lab")  # fast
    assert result.kind == "fast"
    assert result.ok
    events = not_tasks(await read_events(store, head))
    assert summary(events) == [
        ("lab/qemu/100", "migrated"),
        ("lab/qemu/101", "renamed"),
        ("lab/qemu/101", "lock_taken"),
        ("lab/qemu/101", "tags_changed"),
        ("lab/qemu/101", "config_changed"),  # the targeted deep poll: name, tags, lock
    ]
    assert events[0].changes() == {"node": ("pve1", "pve2")}  # a move, never remove + create
    assert events[0].actor is not None
    assert events[0].actor.upid.split(":")[5] == "qmigrate"
    assert events[1].changes() == {"name": ("batch", "batch2")}
    assert events[2].changes() == {"lock": (None, "backup")}
    assert events[3].changes() == {"tags": ([], ["nightly", "batch"])}
    assert {"config.name", "config.tags"} <= set(events[4].changes())

    head = await store.head()
    served.pve.unlock(101)
    await collector.sync("lab")
    assert summary(not_tasks(await read_events(store, head))) == [("lab/qemu/101", "lock_released")]
    head = await store.head()
    # tags in another order are the same tags: only the config file's checksum changed
    served.pve.vm(101).config["tags"] = "batch;nightly"
    await collector.sync("lab", deep=True)
    changes = not_tasks(await read_events(store, head))
    assert [(e.type, set(e.changes())) for e in changes] == [("config_changed", {"digest"})]


async def test_create_destroy_snapshots_and_backups(
    store: EventStore, make_collector: CollectorFactory, operator: Any, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    operator.nodes("pve1").qemu.post(vmid=102, name="new", cores=1, memory=512)
    operator.nodes("pve2").qemu(101).delete()
    await collector.sync("lab")  # a fast poll sees both, and deep-polls the new guest
    events = not_tasks(await read_events(store, head))
    assert summary(events) == [("lab/qemu/102", "discovered"), ("lab/qemu/101", "removed")]
    created = events[0].event.state  # type: ignore[attr-defined]
    assert created["config"]["cores"] in (1, "1")
    assert created["name"] == "new"
    assert events[0].actor is not None
    assert "qmcreate" in events[0].actor.upid
    assert events[1].actor is not None
    assert "qmdestroy" in events[1].actor.upid

    head = await store.head()
    operator.nodes("pve1").qemu(100).snapshot.post(snapname="after", description="after it")
    operator.nodes("pve1").qemu(100).snapshot("before-upgrade").delete()
    served.pve.store_file("local", "vzdump-lxc-200-2026_11_02-00_00_01.tar.zst", 2048, "backup")
    await collector.sync("lab", deep=True)
    events = not_tasks(await read_events(store, head))
    kinds = {(e.stream, e.type) for e in events}
    assert ("lab/snapshot/qemu/100/after", "snapshot_created") in kinds
    assert ("lab/snapshot/qemu/100/before-upgrade", "snapshot_removed") in kinds
    assert (
        "lab/backup/local/backup/vzdump-lxc-200-2026_11_02-00_00_01.tar.zst",
        "backup_seen",
    ) in kinds
    snap = next(e for e in events if e.type == "snapshot_created")
    assert snap.actor is not None
    assert "qmsnapshot" in (snap.actor.upid or "")
    backup = next(e for e in events if e.type == "backup_seen")
    assert backup.event.state["guest"] == "lab/lxc/200"  # type: ignore[attr-defined]
    # a guest created again with a removed vmid continues that id's history
    head = await store.head()
    operator.nodes("pve2").qemu.post(vmid=101, name="reborn", cores=1)
    await collector.sync("lab")
    reborn = not_tasks(await read_events(store, head))
    assert summary(reborn) == [("lab/qemu/101", "discovered")]
    assert reborn[0].recorded.version == 3


async def test_a_restart_diffs_against_the_log_and_appends_nothing_twice(
    store: EventStore, database_url: str, make_collector: CollectorFactory, operator: Any
) -> None:
    await make_collector().sync("lab", deep=True)
    operator.nodes("pve2").qemu(101).config.put(cores=3)
    # a "restart": a new process (new store connection, new collector) on the same database
    reopened = await open_store(database_url)
    try:
        head = await reopened.head()
        second = make_collector(reopened)
        first_result = await second.sync("lab", deep=True)
        assert summary(not_tasks(await read_events(reopened, head))) == [
            ("lab/qemu/101", "config_changed")
        ]
        changed = not_tasks(await read_events(reopened, head))[0]
        # the window comes from the observations table: the first process's last poll
        assert changed.recorded.observed_after is not None
        assert first_result.events_appended >= 1
        third = make_collector(reopened)
        again = await third.sync("lab", deep=True)
        assert again.ok
        assert again.events_appended == 0
    finally:
        await reopened.close()


async def test_two_collectors_at_once_never_duplicate_an_event(
    store: EventStore, database_url: str, make_collector: CollectorFactory, operator: Any
) -> None:
    other_store = await open_store(database_url)
    try:
        one, two = make_collector(), make_collector(other_store)
        results = await asyncio.gather(
            one.sync("lab", deep=True), two.sync("lab", deep=True), one.sync("lab")
        )
        assert sum(r.events_appended for r in results) == len(await read_events(store))
        head = await store.head()
        operator.nodes("pve2").qemu(101).config.put(cores=6)
        operator.nodes("pve2").lxc(200).config.put(cores=2)
        results = await asyncio.gather(
            one.sync("lab", deep=True), two.sync("lab", deep=True), two.sync("lab", deep=True)
        )
        events = not_tasks(await read_events(store, head))
        assert sorted(summary(events)) == [
            ("lab/lxc/200", "config_changed"),
            ("lab/qemu/101", "config_changed"),
        ]
        assert sum(r.events_appended for r in results) == len(await read_events(store, head))
        # every stream's versions are 1..n without a gap or a repeat
        known = Known("lab")
        async for recorded in store.read_all(0):
            assert recorded.version == known.versions.get(recorded.stream_id, 0) + 1
            known.apply(recorded)
    finally:
        await other_store.close()


async def test_ha_state_pool_membership_and_snapshots_in_flight(
    store: EventStore, make_collector: CollectorFactory, operator: Any, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    served.pve.vm(101).ha_state = "started"
    operator.pools.put(poolid="prod", vms="101", comment="production")
    # a snapshot being deleted is neither there nor gone until it settles
    served.pve.vm(100).snapshots["before-upgrade"]["snapstate"] = "delete"
    await collector.sync("lab", deep=True)
    events = not_tasks(await read_events(store, head))
    found = {(e.stream, e.type): e.changes() for e in events}
    assert found[("lab/qemu/101", "pool_changed")] == {"pool": (None, "prod")}
    assert found[("lab/qemu/101", "fields_changed")] == {"ha_state": (None, "started")}
    assert found[("lab/pool/prod", "fields_changed")] == {
        "comment": (None, "production"),
        "members": (["lab/qemu/100"], ["lab/qemu/100", "lab/qemu/101"]),
    }
    assert all("snapshot" not in stream for stream, _type in found)
    # (the fake's digest covers snapshot sections: VM 100's changed with the snapstate)
    assert set(found) == {
        ("lab/qemu/101", "pool_changed"),
        ("lab/qemu/101", "fields_changed"),
        ("lab/pool/prod", "fields_changed"),
        ("lab/qemu/100", "config_changed"),
    }
    assert found[("lab/qemu/100", "config_changed")].keys() == {"digest"}


def _parked(pve: Any) -> Callable[[], bool]:
    """A check that holds once fakepve has answered requests about nodes and then no more
    for a quarter of a second: the poll waits for held requests alone, and is not between an
    answer and the requests it leads to (a cancel there finds ``Observer._try`` tasks not yet
    started, whose ``client.get`` coroutines are then never awaited: a RuntimeWarning, which
    this suite turns into an error)."""
    counts: list[int] = []

    def parked() -> bool:
        counts.append(len(pve.requests))
        nodes = any("/nodes/" in path for _, path, _ in pve.requests)
        return nodes and len(counts) > 5 and len(set(counts[-6:])) == 1

    return parked


async def test_a_poll_cut_off_midway_appends_nothing_and_the_next_appends_once(
    store: EventStore, database_url: str, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector()
    pve = served.pve
    await collector.sync("lab", deep=True)
    head = await store.head()
    assert any("/nodes/pve2/" in path for _, path, _ in pve.requests)  # a deep poll asks
    pve.vm(101).config["cores"] = 12  # VM 101 is on pve2
    # Requests about pve2 are held 5 s (before fakepve records them); the others answer.
    pve.time_scale = 1.0
    pve.slow_network(5.0, node="pve2")
    pve.requests.clear()
    cut = asyncio.create_task(collector.sync("lab", deep=True))
    await until(_parked(pve), GENEROUS_S, what="the poll waiting for pve2 alone")
    # The poll is in flight: fakepve has answered some of its requests, not those about
    # pve2 (without which it cannot finish). The process "dies" now.
    assert not cut.done()
    assert not any("/nodes/pve2/" in path for _, path, _ in pve.requests), pve.requests
    cut.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cut
    pve.slow_network(0.0, node="pve2")
    pve.time_scale = 0.0
    # The held requests end unread; let their threads finish before the next polls.
    await until(lambda: any("/nodes/pve2/" in path for _, path, _ in pve.requests))
    assert await store.head() == head
    reopened = await open_store(database_url)
    try:
        for service in (make_collector(reopened), collector):
            await service.sync("lab", deep=True)
        events = not_tasks(await read_events(store, head))
        assert summary(events) == [("lab/qemu/101", "config_changed")]
    finally:
        await reopened.close()
