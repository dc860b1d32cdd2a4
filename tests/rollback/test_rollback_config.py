"""Config plans proved by execution against fakepve, on SQLite and PostgreSQL: record the
target, change the guest through the API as another user would, observe, plan back, run every
step with proxmoxer as given, observe again, and compare with the target."""

from __future__ import annotations

from typing import Any

import pytest

from eventstore import EventStore, utcnow
from tests.collectors.conftest import CollectorFactory
from tests.rollback.rollback_helpers import (
    StepFailed,
    differences,
    execute,
    executed,
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

    after = await executed(store, collector, operator, found, BATCH)
    assert differences(target, after) == []
    again = await plan(store, BATCH, at=t)
    assert (again.steps, again.blockers) == ([], [])
    assert again.summary.startswith("nothing to do")


async def test_a_running_container_takes_live_keys_at_once_and_the_rest_at_a_reboot(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    target = await state(store, DB)
    assert target.status == "running"
    ct = operator.nodes("pve2").lxc(200)
    # hostname applies at once, memory live, features only at the next start (§5.1)
    ct.config.put(hostname="db-new", memory=1024, features="nesting=1")
    await observe(store, collector)
    changed = await state(store, DB)
    assert changed.pending == {"features": "nesting=1"}

    found = await plan(store, DB, at=t)
    assert [(s.action, s.method, s.path) for s in found.steps] == [
        ("config", "PUT", "/nodes/pve2/lxc/200/config"),
    ]
    [step] = found.steps
    # the pending features are unwanted: reverted, not deleted; nothing else stays pending
    assert step.params == {
        "hostname": "db",
        "memory": target.config["memory"],
        "revert": "features",
        "digest": changed.digest,
    }
    assert not step.requires_reboot
    after = await executed(store, collector, operator, found, DB)
    assert differences(target, after) == []


async def test_a_running_container_reboots_for_what_stays_pending(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    ct = operator.nodes("pve2").lxc(200)
    ct.config.put(features="nesting=1")  # pending on the running container
    ct.status.reboot.post()  # now applied
    await observe(store, collector)
    t = utcnow()
    target = await state(store, DB)
    assert target.config["features"] == "nesting=1"
    ct.config.put(delete="features", description="no nesting")
    ct.status.reboot.post()
    await observe(store, collector)
    assert "features" not in (await state(store, DB)).config

    found = await plan(store, DB, at=t)
    assert [s.action for s in found.steps] == ["config", "reboot"]
    config, reboot = found.steps
    assert config.params["features"] == "nesting=1"
    assert config.params["delete"] == "description"
    assert config.requires_reboot
    assert "pending until the guest restarts: features" in config.reason
    assert "applied at once on the running guest: description" in config.reason
    assert (reboot.path, reboot.disruptive, reboot.requires_reboot) == (
        "/nodes/pve2/lxc/200/status/reboot",
        True,
        True,
    )
    after = await executed(store, collector, operator, found, DB)
    assert differences(target, after) == []


@pytest.mark.parametrize(
    ("rid", "path"), [(BATCH, "nodes/pve2/qemu/101"), (DB, "nodes/pve2/lxc/200")]
)
async def test_the_power_state_comes_back_last(
    store: EventStore, make_collector: CollectorFactory, operator: Any, rid: str, path: str
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    target = await state(store, rid)
    guest = operator(path)
    guest.config.put(description="touched")
    guest.status.post("start" if target.status == "stopped" else "stop")
    await observe(store, collector)

    found = await plan(store, rid, at=t)
    assert found.steps[0].action == "config"
    if target.status == "stopped":
        assert [(s.action, s.fallback) for s in found.steps[1:]] == [
            ("shutdown", False),
            ("stop", True),
        ]
        assert found.steps[1].params == {"timeout": 180}
        assert found.steps[2].disruptive
    else:
        assert [s.action for s in found.steps[1:]] == ["start"]
    ran = execute(operator, found)
    assert ran == [1, 2]  # a clean shutdown needed no hard stop
    await observe(store, collector)
    assert differences(target, await state(store, rid)) == []


async def test_a_plan_fails_at_the_digest_when_the_guest_changed_after_planning(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    operator.nodes("pve2").qemu(101).config.put(cores=4)
    await observe(store, collector)
    found = await plan(store, BATCH, at=t)
    operator.nodes("pve2").qemu(101).config.put(memory=512)  # someone else, after planning
    before = operator.nodes("pve2").qemu(101).config.get()
    with pytest.raises(StepFailed, match="checksum mismatch"):
        execute(operator, found)
    assert operator.nodes("pve2").qemu(101).config.get() == before  # nothing changed


async def test_pending_changes_already_waiting_are_reverted_or_left(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    web = operator.nodes("pve1").qemu(100)
    web.config.put(cores=8, sockets=2)  # both pending on the running VM
    await observe(store, collector)
    assert (await state(store, WEB)).pending == {"cores": "8", "sockets": "2"}
    t_wanted = utcnow()
    web.config.put(description="later")
    await observe(store, collector)

    # back to t: both queued changes are unwanted, so they are reverted
    found = await plan(store, WEB, at=t)
    [config] = found.steps
    assert config.params["revert"] == "cores,sockets"
    assert config.params["delete"] == "description"
    # back to t_wanted: the queued changes are what the target wants, so they are left
    found = await plan(store, WEB, at=t_wanted)
    assert [s.action for s in found.steps] == ["config", "reboot"]
    assert found.steps[0].params == {
        "delete": "description",
        "digest": (await state(store, WEB)).digest,
    }
    assert any("left alone: cores, sockets" in w for w in found.warnings)
    # fakepve 0.5 cannot run a revert (it stores "revert" as a config key, pve-api.md §10), so
    # the first plan's call is asserted above; the second runs for real.
    after = await executed(store, collector, operator, found, WEB)
    assert differences(await state(store, WEB, at=t_wanted), after) == []
    assert (await state(store, WEB)).config["cores"] == "8"  # the reboot applied them


async def test_a_template_cannot_go_back(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    operator.nodes("pve2").qemu(101).template.post()
    await observe(store, collector)
    found = await plan(store, BATCH, at=t)
    assert found.steps == []
    assert "template" in found.blockers[0]


async def test_redacted_secrets_are_a_warning(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    batch = operator.nodes("pve2").qemu(101)
    batch.config.put(cipassword="first")
    await observe(store, collector)
    t = utcnow()
    batch.config.put(cipassword="rotated", ciuser="admin")
    await observe(store, collector)
    found = await plan(store, BATCH, at=t)
    [config] = found.steps
    assert config.params == {"delete": "ciuser", "digest": (await state(store, BATCH)).digest}
    [warning] = found.warnings
    assert "cipassword was a secret" in warning
    assert "set cipassword again by hand" in warning
    after = await executed(store, collector, operator, found, BATCH)
    assert differences(await state(store, BATCH, at=t), after) == ["cipassword"]


async def test_an_unwanted_pending_secret_is_reverted_not_lost(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    # fakepve 0.5 keeps cloud-init keys pending on a running VM (pve-api.md §10)
    operator.nodes("pve1").qemu(100).config.put(cipassword="rotated", ciuser="admin")
    await observe(store, collector)
    found = await plan(store, WEB, at=t)
    [config] = found.steps
    assert config.params == {
        "revert": "cipassword,ciuser",
        "digest": (await state(store, WEB)).digest,
    }
    assert found.warnings == []


async def test_a_changed_pool_membership_is_a_warning(
    store: EventStore, make_collector: CollectorFactory, operator: Any
) -> None:
    collector = make_collector()
    await observe(store, collector)
    t = utcnow()
    operator.pools("prod").put(vms=100, delete=1)
    await observe(store, collector)
    assert (await state(store, WEB)).pool is None
    found = await plan(store, WEB, at=t)
    assert found.steps == []
    assert found.warnings == [
        "the guest was in pool prod at the target and is in (none) now: change its pool "
        "membership by hand"
    ]
