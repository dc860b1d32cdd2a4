"""Plans across nodes, disks, snapshots and backups, proved by execution against fakepve on
SQLite and PostgreSQL; where fakepve 0.5 cannot carry a step out (pve-api.md §10: qemu
migrate and restore, resize), the exact call is asserted instead, and the test says why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.service import CollectorService
from eventstore import EventStore, utcnow
from projections.models import Resource
from projections.rollback.keys import differing_keys
from tests.collectors.conftest import CollectorFactory
from tests.pve import ServedPve
from tests.rollback.rollback_helpers import (
    differences,
    execute,
    executed,
    observe,
    plan,
    state,
)

WEB, BATCH, DB = "lab/qemu/100", "lab/qemu/101", "lab/lxc/200"
CT_BACKUP = "vzdump-lxc-200-2026_11_01-00_00_01.tar.zst"
VM_BACKUP = "local:backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst"


async def test_a_container_migrates_back_in_restart_mode(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    operator.nodes("pve2").lxc(200).migrate.post(target="pve1", restart=1)
    await observe(store, collector)
    found = await plan(store, DB, at=t)
    [step] = found.steps
    assert (step.action, step.method, step.path) == (
        "migrate",
        "POST",
        "/nodes/pve1/lxc/200/migrate",
    )
    assert step.params == {"target": "pve2", "restart": 1}
    assert step.disruptive  # a restart
    after = await executed(store, collector, operator, found, DB)
    assert differences(await state(store, DB, at=t), after) == []


async def test_a_running_vm_migrates_back_online(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    served.run(served.pve.migrate(100, "pve2"))
    await observe(store, collector)
    found = await plan(store, WEB, at=t)
    # fakepve 0.5 answers a qemu migrate with a task but leaves the VM where it is (§10): the
    # call is asserted, as a real cluster takes it
    [step] = found.steps
    assert (step.method, step.path, step.params) == (
        "POST",
        "/nodes/pve2/qemu/100/migrate",
        {"target": "pve1", "online": 1},
    )
    assert not step.disruptive


async def test_a_grown_disk_is_a_blocker_naming_the_snapshot_that_holds_it(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    batch = operator.nodes("pve2").qemu(101)
    batch.snapshot.post(snapname="small", description="8G disk")
    await observe(store, collector)
    t = utcnow()
    # fakepve 0.5's resize does nothing (§10): the grown size is written as Proxmox would
    batch.config.put(scsi0="local-lvm:vm-101-disk-0,size=16G")
    await observe(store, collector)
    found = await plan(store, BATCH, at=t)
    assert found.steps == []
    [blocker] = found.blockers
    assert "scsi0 grew from 8G to 16G and a disk cannot shrink" in blocker
    assert "roll back to snapshot small" in blocker


async def test_a_shrunk_size_is_grown_back_with_resize(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    operator.nodes("pve2").qemu(101).config.put(scsi0="local-lvm:vm-101-disk-0,size=4G,ssd=1")
    await observe(store, collector)
    found = await plan(store, BATCH, at=t)
    config, resize = found.steps
    # the options go back in the config step, at the size the disk has now
    assert config.params["scsi0"] == "local-lvm:vm-101-disk-0,size=4G"
    # fakepve 0.5's resize does nothing (§10): the call is asserted
    assert (resize.method, resize.path, resize.params) == (
        "PUT",
        "/nodes/pve2/qemu/101/resize",
        {"disk": "scsi0", "size": "8G"},
    )


async def test_a_detached_disk_is_reattached_and_a_lost_one_blocks(
    store: EventStore, make_collector: CollectorFactory, operator: Any, served: ServedPve
) -> None:
    served.pve.vm(101).config["scsi1"] = "local-lvm:vm-101-disk-1,size=4G"
    served.pve.vm(101).config["scsi2"] = "local-lvm:vm-101-disk-2,size=2G"
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    # What Proxmox does on delete=scsi1: the volume stays as unused0 (fakepve 0.5 leaves no
    # unusedN, §10, so it is written as Proxmox writes it); scsi2's volume was destroyed.
    operator.nodes("pve2").qemu(101).config.put(
        delete="scsi1,scsi2", unused0="local-lvm:vm-101-disk-1"
    )
    await observe(store, collector)
    found = await plan(store, BATCH, at=t)
    [blocker] = found.blockers
    assert "scsi2 used local-lvm:vm-101-disk-2 at the target; it was removed" in blocker
    assert "no snapshot or backup taken by then is known" in blocker
    [config] = found.steps
    assert config.params["scsi1"] == "local-lvm:vm-101-disk-1,size=4G"
    assert any("scsi1 reattaches local-lvm:vm-101-disk-1" in w for w in found.warnings)
    run = found.__class__(
        **{**{f: getattr(found, f) for f in found.__struct_fields__}, "blockers": []}
    )
    execute(operator, run)  # the reattachment, run without the blocked disk
    await observe(store, collector)
    assert differences(await state(store, BATCH, at=t), await state(store, BATCH)) == ["scsi2"]


async def test_a_snapshot_target_rolls_back_with_a_warning(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    target = await state(store, DB)
    ct = operator.nodes("pve2").lxc(200)
    ct.snapshot.post(snapname="clean", description="before the change")
    await observe(store, collector)
    ct.config.put(cores=4, description="changed")
    await observe(store, collector)
    found = await plan(store, DB, snapshot="clean")
    step, description = found.steps
    # Proxmox keeps the description across a rollback: it is set back after it, without digest
    assert (description.action, description.params) == ("config", {"delete": "description"})
    assert "snapshot rollback changes the config digest" in description.reason
    assert (step.action, step.method, step.path, step.params) == (
        "rollback",
        "POST",
        "/nodes/pve2/lxc/200/snapshot/clean/rollback",
        {},
    )
    assert step.disruptive
    assert any("discards every change" in w for w in found.warnings)
    assert any("holds no RAM state" in w for w in found.warnings)
    execute(operator, found)
    await observe(store, collector)
    after = await state(store, DB)
    assert differing_keys(target.config, after.config) == []
    assert after.status == "stopped"  # no RAM: stopped, as the warning says


async def test_a_snapshot_with_ram_says_the_guest_resumes(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    operator.nodes("pve1").qemu(100).snapshot.post(snapname="ram", vmstate=1)
    await observe(store, collector)
    found = await plan(store, WEB, snapshot="ram")
    [step] = found.steps
    # fakepve 0.5 does not start a VM after a RAM snapshot's rollback (§10): the call and
    # the warning are asserted; a real cluster resumes the guest
    assert (step.method, step.path, step.params) == (
        "POST",
        "/nodes/pve1/qemu/100/snapshot/ram/rollback",
        {},
    )
    assert any("holds RAM state: the guest resumes running" in w for w in found.warnings)
    targets = {x.snapshot: x for x in await _targets(store, WEB) if x.kind == "snapshot"}
    assert (targets["ram"].vmstate, targets["before-upgrade"].vmstate) == (True, False)
    assert targets["ram"].label == "snapshot ram with RAM"


async def test_a_removed_container_is_restored_from_its_newest_backup(
    store: EventStore, make_collector: CollectorFactory, operator: Any, served: ServedPve
) -> None:
    collector = make_collector()
    t, target = await _backed_up_then_removed(store, collector, operator, served)
    # its last configuration and the backup (both taken within a second: either may be newer)
    assert sorted(x.kind for x in await _targets(store, DB)) == ["backup", "version"]
    found = await plan(store, DB, at=t)
    assert found.based_on_digest is None
    restore = found.steps[0]
    assert (restore.action, restore.method, restore.path) == ("restore", "POST", "/nodes/pve2/lxc")
    assert restore.params["ostemplate"] == f"local:backup/{CT_BACKUP}"
    assert (restore.params["restore"], restore.params["vmid"]) == (1, 200)
    assert restore.params["storage"] == "local-lvm"
    assert restore.params["rootfs"] == "local-lvm:8"
    assert restore.params["hostname"] == "db"
    assert "force" not in restore.params
    assert [s.action for s in found.steps[1:]] == ["config", "start"]
    assert "digest" not in found.steps[1].params
    assert "no digest: the restore changes the config digest" in found.steps[1].reason
    after = await executed(store, collector, operator, found, DB)
    assert differences(target, after) == []


async def test_a_removed_vm_is_restored_from_its_archive(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    web = operator.nodes("pve1").qemu(100)
    web.status.stop.post()
    web.delete()
    await observe(store, collector)
    found = await plan(store, WEB, at=t)
    # fakepve 0.5 refuses a qemu restore (§10): the calls are asserted
    restore, config, start = found.steps
    assert (restore.method, restore.path, restore.params) == (
        "POST",
        "/nodes/pve1/qemu",
        {"vmid": 100, "archive": VM_BACKUP},
    )
    assert config.path == "/nodes/pve1/qemu/100/config"
    assert "digest" not in config.params
    assert "scsi0" not in config.params  # disks come from the archive
    assert str(config.params["cores"]) == "2"
    assert (start.action, start.path) == ("start", "/nodes/pve1/qemu/100/status/start")
    assert any("cipassword was a secret" in w for w in found.warnings)


async def test_a_reused_vmid_is_never_planned_onto_the_new_guest(
    store: EventStore, make_collector: CollectorFactory, operator: Any, served: ServedPve
) -> None:
    collector = make_collector()
    t, target = await _backed_up_then_removed(store, collector, operator, served)
    served.pve.add_ct(200, "other", node="pve2", status="stopped", config={"cores": 2})
    await observe(store, collector)
    newcomer = await state(store, DB)

    found = await plan(store, DB, at=t)
    assert found.vmid == 102  # 100 and 101 are VMs, 200 the newcomer
    assert any("restores into vmid 102" in w for w in found.warnings)
    assert all("/200" not in s.path for s in found.steps)
    assert found.steps[0].params["vmid"] == 102
    execute(operator, found)
    await observe(store, collector)
    restored = await state(store, "lab/lxc/102")
    assert differences(target, restored, volumes=False) == []
    assert differences(newcomer, await state(store, DB)) == []  # untouched


async def _backed_up_then_removed(
    store: EventStore, collector: CollectorService, operator: Any, served: ServedPve
) -> tuple[datetime, Resource]:
    """The container db observed, backed up and observed (the time and its state then), then
    stopped and destroyed by someone, and observed gone."""
    await observe(store, collector)
    served.pve.store_file("local", CT_BACKUP, 4096, content="backup")
    await observe(store, collector)
    t = utcnow()
    target = await state(store, DB)
    ct = operator.nodes("pve2").lxc(200)
    ct.status.stop.post()
    ct.delete()
    await observe(store, collector)
    return t, target


async def _targets(store: EventStore, rid: str) -> list[Any]:
    from projections.rollback import rollback_targets

    return list((await rollback_targets(store, rid)).items)


async def test_targets_list_versions_snapshots_and_backups_newest_first(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    first = await state(store, WEB)
    web = operator.nodes("pve1").qemu(100)
    web.config.post(description="first change")  # a qmconfig task: attributed
    await observe(store, collector)
    web.status.stop.post()  # status alone: no other configuration
    await observe(store, collector)
    web.config.post(description="second change")
    await observe(store, collector)
    items = await _targets(store, WEB)
    versions = [x for x in items if x.kind == "version"]
    assert [v.differs for v in versions] == [["description"], ["description"]]
    newer, older = versions
    assert "description first change (now second change)" in newer.label
    assert newer.changed_by is not None
    assert newer.changed_by.user == "root@pam"
    assert older.position == first.position  # the version before the first change
    assert "description not set (now second change)" in older.label
    [snapshot] = [x for x in items if x.kind == "snapshot"]
    assert (snapshot.snapshot, snapshot.vmstate) == ("before-upgrade", False)
    assert snapshot.label == "snapshot before-upgrade: before the upgrade"
    [backup] = [x for x in items if x.kind == "backup"]
    assert backup.backup == VM_BACKUP
    assert (backup.storage, backup.size, backup.protected) == ("local", 4096, False)
    times = [x.at for x in items]
    assert times == sorted(times, reverse=True)
    # the newest version of that configuration is after the stop: no power step
    found = await plan(store, WEB, position=newer.position)
    assert [s.action for s in found.steps] == ["config"]
