"""Attribution: a change matched to a Proxmox task carries the task's user, token and UPID."""

from __future__ import annotations

from typing import Any

import pytest
from collector_helpers import not_tasks, read_events, until
from proxmoxer import ProxmoxAPI

from collectors import observe
from eventstore import EventStore
from tests.collectors.conftest import CollectorFactory
from tests.collectors.pve_proxy import PveProxy
from tests.pve import HOST, ServedPve


def _client(served: ServedPve, **auth: Any) -> Any:
    return ProxmoxAPI(HOST, port=served.pve.port, verify_ssl=served.cafile, timeout=10, **auth)


async def test_a_change_made_by_a_second_token_and_a_second_user_is_attributed(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve, operator: Any
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    secret = served.add_token("ops@pve!ci")
    pipeline = _client(served, user="ops@pve", token_name="ci", token_value=secret)
    operator.access.password.put(userid="alice@pve", password="alice-pass-1")
    alice = _client(served, user="alice@pve", password="alice-pass-1")
    try:
        head = await store.head()
        upid = pipeline.nodes("pve2").qemu(101).config.post(cores=5)  # a qmconfig task
        alice.nodes("pve1").qemu(100).config.post(name="web-renamed")
        operator.nodes("pve2").lxc(200).config.put(cores=3)  # a PUT: no task, no attribution
        await collector.sync("lab", deep=True)
        events = await read_events(store, head)
        changed = {(e.stream, e.type): e for e in not_tasks(events)}
        by_token = changed[("lab/qemu/101", "config_changed")]
        assert by_token.actor is not None
        assert by_token.actor.user == "ops@pve"
        assert by_token.actor.token == "ops@pve!ci"
        assert by_token.actor.upid == upid
        assert ":qmconfig:101:" in upid
        renamed = changed[("lab/qemu/100", "renamed")]
        assert renamed.actor is not None
        assert renamed.actor.user == "alice@pve"
        assert renamed.actor.token is None
        assert ":qmconfig:100:" in (renamed.actor.upid or "")
        assert changed[("lab/lxc/200", "config_changed")].actor is None  # "unknown"
        # the tasks themselves are recorded once, each in its own stream
        tasks = [e for e in events if e.type == "task_seen"]
        assert f"lab/task/{upid}" in {e.stream for e in tasks}
        seen = next(e for e in tasks if e.stream == f"lab/task/{upid}").event
        assert seen.token == "ops@pve!ci"
        assert seen.task_type == "qmconfig"
        # the window is honest: the change happened after the previous observation
        assert by_token.recorded.observed_after is not None
        assert by_token.recorded.observed_after < by_token.recorded.observed_at
        # a task is the actor of the change it made, not of a later one it did not make
        head = await store.head()
        served.pve.vm(101).config["cores"] = 9  # changed behind the API's back
        await collector.sync("lab", deep=True)
        later = not_tasks(await read_events(store, head))
        assert [e.type for e in later] == ["config_changed"]
        assert later[0].actor is None
        again = await collector.sync("lab", deep=True)
        assert again.events_appended == 0  # tasks are not recorded twice
    finally:
        for client in (pipeline, alice):
            client._store["session"].close()


@pytest.mark.parametrize("who", ["token", "user"])
async def test_every_change_a_task_makes_carries_its_task_and_whoever_ran_it(
    store: EventStore,
    make_collector: CollectorFactory,
    served: ServedPve,
    operator: Any,
    who: str,
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    if who == "token":
        secret = served.add_token("ops@pve!ci")
        client = _client(served, user="ops@pve", token_name="ci", token_value=secret)
        user, token = "ops@pve", "ops@pve!ci"
    else:
        operator.access.password.put(userid="alice@pve", password="alice-pass-1")
        client = _client(served, user="alice@pve", password="alice-pass-1")
        user, token = "alice@pve", None
    web, batch, db = "lab/qemu/100", "lab/qemu/101", "lab/lxc/200"
    snap = "lab/snapshot/qemu/100"
    # (task type, the client's call, its parameters, kind of poll, the events it explains);
    # a fast poll that sees only a removal reads the task logs too
    steps: list[tuple[str, str, dict[str, Any], str, list[tuple[str, str]]]] = [
        ("qmcreate", "POST nodes/pve1/qemu", {"vmid": 300, "name": "made"}, "fast",
         [("lab/qemu/300", "discovered")]),
        ("qmconfig", "POST nodes/pve1/qemu/100/config", {"name": "web-2", "tags": "a", "cores": 4},
         "deep", [(web, "renamed"), (web, "tags_changed"), (web, "pending_change_seen")]),
        ("qmreboot", "POST nodes/pve1/qemu/100/status/reboot", {}, "deep",
         [(web, "config_changed"), (web, "pending_change_applied")]),
        ("qmstart", "POST nodes/pve2/qemu/101/status/start", {}, "fast",
         [(batch, "status_changed")]),
        ("qmsnapshot", "POST nodes/pve1/qemu/100/snapshot", {"snapname": "later"}, "deep",
         [(f"{snap}/later", "snapshot_created")]),
        ("qmdelsnapshot", "DELETE nodes/pve1/qemu/100/snapshot/before-upgrade", {}, "deep",
         [(f"{snap}/before-upgrade", "snapshot_removed")]),
        ("vzshutdown", "POST nodes/pve2/lxc/200/status/shutdown", {}, "fast",
         [(db, "status_changed")]),
        ("vzmigrate", "POST nodes/pve2/lxc/200/migrate", {"target": "pve1"}, "fast",
         [(db, "migrated")]),
        ("vzdestroy", "DELETE nodes/pve1/lxc/200", {}, "fast", [(db, "removed")]),
        ("qmdestroy", "DELETE nodes/pve1/qemu/300", {}, "fast", [("lab/qemu/300", "removed")]),
    ]  # fmt: skip
    try:
        for task_type, call, params, kind, expected in steps:
            head = await store.head()
            method, path = call.split(" ")
            upid = getattr(client(path), method.lower())(**params)
            assert f":{task_type}:" in upid
            await collector.sync("lab", deep=kind == "deep")
            every = await read_events(store, head)
            events = {(e.stream, e.type): e for e in not_tasks(every)}
            # the task itself, in a window bounded by the previous read of its node's log
            task = next(e for e in every if e.stream == f"lab/task/{upid}").recorded
            assert task.observed_after is not None
            assert task.observed_after.timestamp() < served.pve.tasks[upid]["endtime"] + 1
            for key in expected:
                assert key in events, (task_type, key, sorted(events))
                actor = events[key].actor
                assert actor is not None, (task_type, key)
                assert (actor.user, actor.token, actor.upid) == (user, token, upid), key
    finally:
        client._store["session"].close()


async def test_a_backup_is_attributed_while_it_runs_and_when_it_ends(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    served.pve.time_scale = 0.05  # the vzdump below runs a second
    head = await store.head()
    upid = served.run(served.pve.backup(100, secs=20, user="ops@pve!ci"))
    await collector.sync("lab")  # running: the lock it took
    served.pve.store_file("local", "vzdump-qemu-100-2026_12_05-00_00_01.vma.zst", 1, "backup")
    await until(lambda: served.pve.tasks[upid]["status"] == "stopped", 10)
    await collector.sync("lab", deep=True)
    events = {(e.stream, e.type): e for e in not_tasks(await read_events(store, head))}
    backup = "lab/backup/local/backup/vzdump-qemu-100-2026_12_05-00_00_01.vma.zst"
    for key in (
        ("lab/qemu/100", "lock_taken"),
        ("lab/qemu/100", "lock_released"),
        (backup, "backup_seen"),
    ):
        actor = events[key].actor
        assert actor is not None, key
        assert (actor.user, actor.token, actor.upid) == ("ops@pve", "ops@pve!ci", upid)


async def test_a_task_on_a_node_whose_clock_is_minutes_ahead_is_still_matched(
    store: EventStore,
    make_collector: CollectorFactory,
    proxy: PveProxy,
    operator: Any,
) -> None:
    proxy.clock_shift["pve1"] = 300  # pve1's clock runs five minutes ahead
    collector = make_collector(host=f"{HOST}:{proxy.port}")
    await collector.sync("lab", deep=True)
    head = await store.head()
    upid = operator.nodes("pve1").qemu(100).config.post(description="moved on")
    await collector.sync("lab", deep=True)
    changed = [e for e in not_tasks(await read_events(store, head))]
    assert [e.type for e in changed] == ["config_changed"]
    assert changed[0].actor is not None
    assert changed[0].actor.upid == upid
    health = collector.health()["lab"]
    assert abs(health.clock_offsets_s["pve1"] - 300) <= 2
    assert abs(health.clock_offsets_s.get("pve2", 0)) <= 2
    assert any("pve1" in w and "clock" in w for w in health.warnings)


async def test_no_task_is_lost_between_two_reads_of_a_busy_node(
    store: EventStore,
    make_collector: CollectorFactory,
    served: ServedPve,
    proxy: PveProxy,
    operator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(observe, "TASK_LIMIT", 5)  # pages of five: a busy node is cheap
    proxy.real_task_log = True  # honours since, lists running tasks only when asked
    collector = make_collector(host=f"{HOST}:{proxy.port}")
    await collector.sync("lab", deep=True)
    served.pve.time_scale = 0.05
    long = served.run(served.pve.backup(200, secs=40, user="root@pam"))  # two seconds
    await collector.sync("lab", deep=True)  # while it runs
    served.pve.time_scale = 0
    quick = [
        operator.nodes("pve2").qemu(101).config.post(description=f"step {n}") for n in range(12)
    ]
    await until(lambda: served.pve.tasks[long]["status"] == "stopped", 10)
    await collector.sync("lab", deep=True)
    recorded = {e.event.upid for e in await read_events(store) if e.type == "task_seen"}  # type: ignore[attr-defined]
    assert {long, *quick} <= recorded
