"""Every Proxmox VE version from 7.0, and what a cluster with a node down shows, on both backends.

Where fakepve answers as PVE 9 does, a rewriting proxy answers as the older version or the
real cluster would (``tests/collectors/pve_proxy.py``).
"""

from __future__ import annotations

import pytest
from collector_helpers import not_tasks, read_events, summary

from collectors.state import Known
from eventstore import EventStore
from projections.queries import history, resource_at
from projections.runner import ProjectionRunner
from tests.collectors.conftest import CollectorFactory
from tests.collectors.pve_proxy import PveProxy
from tests.pve import HOST, ServedPve


async def test_pools_and_their_members_are_recorded_before_pve_8_1(
    store: EventStore, make_collector: CollectorFactory, proxy: PveProxy
) -> None:
    proxy.pre_81_pools = True  # GET /pools?poolid= is a 400 there
    result = await make_collector(host=f"{HOST}:{proxy.port}").sync("lab", deep=True)
    assert result.ok
    assert not result.faults
    pools = [e for e in await read_events(store) if e.stream == "lab/pool/prod"]
    assert [e.type for e in pools] == ["discovered"]
    assert pools[0].event.state["members"] == ["lab/qemu/100"]  # type: ignore[attr-defined]
    assert "/api2/json/pools/prod" in proxy.requests


@pytest.mark.parametrize("shapes", ["fakepve", "real"])
async def test_an_offline_nodes_resources_are_discovered_and_their_fields_learned_later(
    store: EventStore,
    make_collector: CollectorFactory,
    served: ServedPve,
    proxy: PveProxy,
    shapes: str,
) -> None:
    proxy.offline_shapes = shapes == "real"  # {id, vmid, node, type, status: "unknown"}
    served.pve.set_node_offline("pve2")
    collector = make_collector(host=f"{HOST}:{proxy.port}")
    result = await collector.sync("lab", deep=True)
    assert result.ok
    events = {e.stream: e for e in not_tasks(await read_events(store))}
    batch = events["lab/qemu/101"].event.state  # type: ignore[attr-defined]
    assert events["lab/qemu/101"].type == "discovered"
    assert (batch["vmid"], batch["node"], batch["type"]) == (101, "pve2", "qemu")
    assert (batch["name"], batch["status"], batch["config"]) == (None, "unknown", None)
    assert "name" in batch["unknown"]
    assert events["lab/lxc/200"].event.state["status"] == "unknown"  # type: ignore[attr-defined]
    storage = events["lab/storage/pve2/local"].event.state  # type: ignore[attr-defined]
    assert storage["status"] == "unknown"
    assert storage["plugintype"] == "dir"

    head = await store.head()
    served.pve.set_node_offline("pve2", offline=False)
    await collector.sync("lab")
    await collector.sync("lab", deep=True)
    later = not_tasks(await read_events(store, head))
    # learning what the discovery could not see is no change: no rename from None, no
    # status or fields changed from unknown
    assert {e.type for e in later if e.stream != "lab/node/pve2"} == {"learned"}
    learned = {e.stream: e.changes() for e in later if e.type == "learned"}
    assert learned["lab/qemu/101"]["name"] == (None, "batch")
    assert learned["lab/qemu/101"]["status"] == ("unknown", "stopped")
    known = Known("lab")
    for seen in await read_events(store):
        known.apply(seen.recorded)
    assert known.states["lab/qemu/101"]["name"] == "batch"
    assert known.states["lab/qemu/101"]["unknown"] is None
    assert known.states["lab/storage/pve2/local"]["unknown"] is None
    again = await collector.sync("lab", deep=True)
    assert again.events_appended == 0
    # the read side folds it like any change and shows it under its own type
    await ProjectionRunner(store).catch_up()
    now = await resource_at(store, "lab/qemu/101")
    assert (now.name, now.status, now.node) == ("batch", "stopped", "pve2")
    entries = (await history(store, "lab/qemu/101")).items
    assert [e.event for e in entries] == ["discovered", "learned"]
    rows = {c.field: (c.old, c.new) for c in entries[1].changes}
    assert rows["name"] == (None, "batch")
    assert entries[1].actor is None


async def test_a_guest_first_seen_by_a_fast_poll_is_discovered_with_its_ha_state(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve, proxy: PveProxy
) -> None:
    proxy.ha_resources = [{"sid": "vm:300", "type": "vm", "state": "started", "max_restart": 1}]
    collector = make_collector(host=f"{HOST}:{proxy.port}")
    await collector.sync("lab", deep=True)
    served.pve.add_vm(300, "ha-guest", node="pve1", status="running", config={"cores": 1})
    head = await store.head()
    await collector.sync("lab")
    found = not_tasks(await read_events(store, head))
    assert summary(found) == [("lab/qemu/300", "discovered")]
    assert found[0].event.state["ha"] == {"state": "started", "max_restart": 1}  # type: ignore[attr-defined]
    head = await store.head()
    again = await collector.sync("lab", deep=True)
    assert not_tasks(await read_events(store, head)) == []  # no false ha: null -> {...}
    assert again.ok
