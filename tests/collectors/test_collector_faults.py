"""A partial observation is never a deletion (invariant 4), and faults are reported.

Offline nodes, lost quorum, dropped and hung connections, HTTP 500s and 595s, refused
credentials: none of them may append a removal or any other false event.
"""

from __future__ import annotations

import asyncio
from typing import Any

from collector_helpers import not_tasks, read_events, summary

from collectors import observations
from collectors.config import ClusterConfig
from collectors.service import CollectorService
from eventstore import EventStore
from tests.collectors.conftest import CollectorFactory
from tests.pve import TOKEN_ID, ServedPve, env_with
from tests.waiting import GENEROUS_S

BACKUP = "lab/backup/local/backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst"


async def test_an_offline_node_leaves_its_resources_unobserved(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    before = await observations.load(store, "lab")
    head = await store.head()
    served.pve.set_node_offline("pve2")
    result = await collector.sync("lab", deep=True)
    assert result.ok
    assert any("pve2 is offline" in f for f in result.faults)
    health = collector.health()["lab"]
    assert health.state == "degraded"
    assert health.poll_errors_total["node_offline"] == 1
    events = not_tasks(await read_events(store, head))
    # the node's membership state is an observation; its guests and storages are not touched
    assert summary(events) == [("lab/node/pve2", "status_changed")]
    assert events[0].changes() == {"status": ("online", "offline")}
    after = await observations.load(store, "lab")
    assert after["lab/qemu/101"] == before["lab/qemu/101"]  # stale: "unobserved since"
    assert after["lab/storage/pve2/local"] == before["lab/storage/pve2/local"]
    assert after["lab/qemu/100"][1] > before["lab/qemu/100"][1]  # type: ignore[operator]
    fast = await collector.sync("lab")
    assert fast.ok
    assert fast.events_appended == 0

    head = await store.head()
    served.pve.set_node_offline("pve2", offline=False)
    await collector.sync("lab", deep=True)
    events = not_tasks(await read_events(store, head))
    assert summary(events) == [("lab/node/pve2", "status_changed")]
    assert collector.health()["lab"].state == "ok"


async def test_lost_quorum_removes_nothing(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    served.pve.lose_quorum()
    # what a node without quorum may show: a stale, incomplete guest list
    gone = served.pve.vm(101)
    served.pve.vms.remove(gone)
    result = await collector.sync("lab", deep=True)
    assert result.ok
    assert any("quorate" in f for f in result.faults)
    assert collector.health()["lab"].poll_errors_total["quorum"] == 1
    assert not_tasks(await read_events(store, head)) == []
    served.pve.regain_quorum()
    await collector.sync("lab", deep=True)
    assert summary(not_tasks(await read_events(store, head))) == [("lab/qemu/101", "removed")]

    # Snapshot and backup lists count as complete only while quorate, too.
    head = await store.head()
    served.pve.lose_quorum()
    del served.pve.vm(100).snapshots["before-upgrade"]
    served.pve.storages["local"]["volumes"].pop(BACKUP.split("/", 3)[3])
    await collector.sync("lab", deep=True)
    # (the guest's digest, which covers its snapshots, changes: that is an observation)
    assert summary(not_tasks(await read_events(store, head))) == [
        ("lab/qemu/100", "config_changed")
    ]
    head = await store.head()
    served.pve.regain_quorum()
    await collector.sync("lab", deep=True)
    assert sorted(summary(not_tasks(await read_events(store, head)))) == [
        (BACKUP, "backup_removed"),
        ("lab/snapshot/qemu/100/before-upgrade", "snapshot_removed"),
    ]


async def test_dropped_connections_fail_the_poll_and_are_reported(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    served.pve.flaky_network(drop_rate=1.0)
    result = await collector.sync("lab", deep=True)
    assert not result.ok
    assert result.events_appended == 0
    health = collector.health()["lab"]
    assert health.state == "down"
    assert health.consecutive_failures == 1
    assert health.poll_errors_total["unreachable"] >= 1
    assert health.last_error
    # some requests dropped, some not: whatever is seen, nothing false is appended
    served.pve.flaky_network(drop_rate=0.4, seed=7)
    for _ in range(2):
        await collector.sync("lab", deep=True)
    assert await read_events(store, head) == []
    served.pve.flaky_network()
    result = await collector.sync("lab", deep=True)
    assert result.ok
    assert not result.faults
    assert result.events_appended == 0
    assert collector.health()["lab"].consecutive_failures == 0


async def test_hung_requests_time_out_quickly(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector(read_timeout_s=0.3, retries=1)
    await collector.sync("lab", deep=True)
    head = await store.head()
    # Every request hangs 2 s, longer than the read timeout: had the client waited, the
    # answers would have come and the poll would be ok, with no timeout counted.
    served.pve.flaky_network(hang_rate=1.0, hang_secs=2)
    result = await asyncio.wait_for(collector.sync("lab"), GENEROUS_S)
    assert not result.ok
    assert result.events_appended == 0
    assert collector.health()["lab"].poll_errors_total["timeout"] >= 1
    assert await read_events(store, head) == []


async def test_http_errors_leave_resources_unobserved(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve, operator: Any
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    pve = served.pve
    operator.nodes("pve2").qemu(101).config.put(cores=7)
    pve.fail("GET", "/nodes/pve2/qemu/101/config", 500, "boom")
    del pve.vm(100).snapshots["before-upgrade"]
    pve.fail("GET", "/nodes/pve1/qemu/100/snapshot", 595, "No route to host")
    del pve.storages["local"]["volumes"]["backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst"]
    for node in ("pve1", "pve2"):
        pve.fail("GET", f"/nodes/{node}/storage/local/content", 500, "storage is slow")
    result = await collector.sync("lab", deep=True)
    assert result.ok
    assert len(result.faults) >= 4
    assert any("595" in f for f in result.faults)
    assert any("boom" in f for f in result.faults)
    # no removal, no change of 101: only VM 100's config file checksum (its snapshot section
    # went) was seen to change
    events = not_tasks(await read_events(store, head))
    assert [(e.stream, e.type, set(e.changes())) for e in events] == [
        ("lab/qemu/100", "config_changed", {"digest"})
    ]
    head = await store.head()

    pve.fail("GET", "/cluster/resources", 500, "pveproxy is unwell")
    result = await collector.sync("lab")
    assert not result.ok
    assert collector.health()["lab"].state == "down"
    assert not_tasks(await read_events(store, head)) == []

    pve.failures.clear()
    await collector.sync("lab", deep=True)
    assert sorted(summary(not_tasks(await read_events(store, head)))) == [
        (BACKUP, "backup_removed"),
        ("lab/qemu/101", "config_changed"),
        ("lab/snapshot/qemu/100/before-upgrade", "snapshot_removed"),
    ]


async def test_revoked_token_is_reported_and_appends_nothing(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector()
    await collector.sync("lab", deep=True)
    head = await store.head()
    del served.pve.apitokens[TOKEN_ID]
    result = await collector.sync("lab", deep=True)
    assert not result.ok
    assert result.events_appended == 0
    health = collector.health()["lab"]
    assert health.poll_errors_total["auth"] >= 1
    assert "401" in (health.last_error or "")
    assert await read_events(store, head) == []


async def test_an_expired_ticket_means_logging_in_again(
    store: EventStore, served: ServedPve
) -> None:
    cluster = ClusterConfig(
        name="lab",
        host=served.host,
        user="root@pam",
        password_env="PVE_PASSWORD",
        verify_tls=served.cafile,
        read_timeout_s=5.0,
    )
    collector = CollectorService(
        store, [cluster], fingerprint_key=b"k", environ=env_with({}, PVE_PASSWORD="secret")
    )
    try:
        first = await collector.sync("lab", deep=True)
        assert first.ok
        assert first.events_appended > 0
        logins = sum(1 for r in served.pve.requests if r[1].endswith("/access/ticket"))
        served.pve.revoke_tickets()  # every ticket is refused from now on: 401
        again = await collector.sync("lab", deep=True)
        assert again.ok
        assert not again.faults
        assert again.events_appended == 0
        assert sum(1 for r in served.pve.requests if r[1].endswith("/access/ticket")) > logins
    finally:
        await collector.stop()
    # a missing password variable is a clear error, not a crash
    broken = CollectorService(store, [cluster], fingerprint_key=b"k", environ={})
    try:
        result = await broken.sync("lab")
        assert not result.ok
        assert "PVE_PASSWORD" in result.faults[0]
    finally:
        await broken.stop()
