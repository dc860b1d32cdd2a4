"""Attribution: a change matched to a Proxmox task carries the task's user, token and UPID."""

from __future__ import annotations

from typing import Any

from collector_helpers import not_tasks, read_events
from proxmoxer import ProxmoxAPI

from eventstore import EventStore
from tests.collectors.conftest import CollectorFactory
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
