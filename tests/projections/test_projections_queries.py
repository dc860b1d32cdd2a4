"""The read side on both backends: times, positions, filters, paging and errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from collectors.events import (
    ConfigChanged,
    Discovered,
    Migrated,
    PoolChanged,
    Removed,
    Renamed,
    SnapshotCreated,
    StatusChanged,
    TagsChanged,
)
from eventstore import Actor, EventStore, utcnow
from eventstore.sqlite import READ_MMAP_BYTES
from projections.dialects import dialect_for
from projections.errors import (
    InvalidParameterError,
    NotFoundError,
    QueryError,
    UnprocessableError,
)
from projections.queries import (
    Point,
    changes,
    history,
    inventory,
    relations,
    resource_at,
    versions_sql,
)
from projections.runner import ProjectionRunner, rebuild
from tests.projections.projection_helpers import at, change, guest_state, new

WEB = "lab/qemu/100"
DB = "lab/lxc/200"
SNAP = "lab/snapshot/qemu/100/before-upgrade"
ROOT = Actor(user="root@pam", upid="UPID:pve1:1:2:3:qmigrate:100:root@pam:")
WEB_CONFIG = {
    "scsi0": "local-lvm:vm-100-disk-0,size=32G",
    "scsi1": "file=ceph:vm-100-disk-1,size=8G",
    "ide2": "none,media=cdrom",
    "ide3": "local:iso/debian-12.iso,media=cdrom",
    "efidisk0": "local-lvm:vm-100-disk-2,efitype=4m,size=4M",
    "unused0": "ceph:vm-100-disk-9",
    "net0": "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1,tag=20",
    "net1": "e1000=BC:24:11:00:00:01,bridge=vmbr1",
    "memory": "2048",
}
DB_CONFIG = {
    "rootfs": "local-zfs:subvol-200-disk-0,size=8G",
    "mp0": "/mnt/host/data,mp=/data",
    "mp1": "local-zfs:subvol-200-disk-1,mp=/srv,size=4G",
    "net0": "name=eth0,bridge=vmbr0,hwaddr=AA:BB:CC:DD:EE:FF,ip=dhcp,type=veth",
}


@pytest.fixture
async def timeline(store: EventStore) -> EventStore:
    """A small history with known times (seconds after T0):

    10 web discovered on pve1 (tags prod), db discovered on pve1;
    20 web memory 2048 -> 4096 (root);  30 web migrated to pve2 (root);
    40 db stopped;  45 snapshot of web;  50 web renamed; db joins pool prod;
    60 db removed (last seen at 55);  70 web tags prod -> prod;web.
    """
    await store.append(
        [
            new(
                WEB,
                Discovered(
                    state=guest_state(
                        WEB, name="web", tags=["prod"], config=WEB_CONFIG, digest="d1"
                    )
                ),
                10,
            ),
            new(DB, Discovered(state=guest_state(DB, name="db", config=DB_CONFIG)), 10),
        ]
    )
    await store.append(
        [
            new(
                WEB,
                ConfigChanged(changes=change("config.memory", "2048", 4096), digest="d2"),
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
                Migrated(changes=change("node", "pve1", "pve2")),
                30,
                observed_after=25,
                actor=ROOT,
            )
        ]
    )
    await store.append([new(DB, StatusChanged(changes=change("status", "running", "stopped")), 40)])
    await store.append(
        [new(SNAP, SnapshotCreated(state={"name": "before-upgrade", "vmid": 100}), 45)]
    )
    await store.append(
        [
            new(WEB, Renamed(changes=change("name", "web", "www")), 50),
            new(DB, PoolChanged(changes=change("pool", None, "prod")), 50),
        ]
    )
    await store.append([new(DB, Removed(), 60, observed_after=55)])
    await store.append(
        [new(WEB, TagsChanged(changes=change("tags", ["prod"], ["prod", "web"])), 70)]
    )
    await ProjectionRunner(store).catch_up()
    return store


async def test_inventory_at_each_time(timeline: EventStore) -> None:
    assert (await inventory(timeline, at=at(5))).items == []  # before the first event
    first = await inventory(timeline, at=at(10))
    assert [(r.id, r.node, r.name) for r in first.items] == [
        (DB, "pve1", "db"),
        (WEB, "pve1", "web"),
    ]
    assert first.position == 10
    assert first.at == at(10)
    web = first.items[1]
    assert web.config["memory"] == "2048"
    assert web.tags == ["prod"]
    assert web.digest == "d1"
    assert web.observed_at == at(10)
    assert web.position == 1
    assert web.valid_until == at(20)
    just_before = await inventory(timeline, at=at(29.999))
    assert [r.node for r in just_before.items] == ["pve1", "pve1"]
    assert (await inventory(timeline, at=at(30))).items[1].node == "pve2"  # counts from 30
    later = await inventory(timeline, at=at(65))
    assert [r.id for r in later.items] == [WEB, SNAP]  # db removed at 60
    now = await inventory(timeline)
    assert [(r.id, r.name, r.tags) for r in now.items] == [
        (WEB, "www", ["prod", "web"]),
        (SNAP, "before-upgrade", []),
    ]
    assert now.position == 10
    assert now.items[0].valid_until is None


async def test_inventory_at_a_position(timeline: EventStore) -> None:
    page = await inventory(timeline, position=3)
    assert page.at == at(20)
    assert [(r.id, r.config.get("memory")) for r in page.items] == [
        (DB, None),
        (WEB, 4096),
    ]
    assert (await inventory(timeline, position=0)).items == []


async def test_inventory_filters(timeline: EventStore) -> None:
    t = at(55)
    assert [r.id for r in (await inventory(timeline, at=t, type="lxc")).items] == [DB]
    assert [r.id for r in (await inventory(timeline, at=t, node="pve2")).items] == [WEB]
    assert [r.id for r in (await inventory(timeline, at=t, status="stopped")).items] == [DB]
    assert [r.id for r in (await inventory(timeline, at=t, pool="prod")).items] == [DB]
    assert [r.id for r in (await inventory(timeline, at=t, tag="prod")).items] == [WEB]
    assert (await inventory(timeline, at=t, tag="pro")).items == []  # whole tags only
    assert [r.id for r in (await inventory(timeline, at=t, q="WW")).items] == [WEB]
    assert [r.id for r in (await inventory(timeline, at=t, q="lab/qemu/1")).items] == [WEB]
    assert (await inventory(timeline, at=t, q="%")).items == []  # no wildcards


async def test_paging_keeps_the_position_of_the_first_page(timeline: EventStore) -> None:
    first = await inventory(timeline, limit=1)
    assert [r.id for r in first.items] == [WEB]
    assert first.next_cursor
    # a new resource appears between the pages; the listing does not change under the client
    await timeline.append([new("lab/qemu/101", Discovered(state=guest_state("lab/qemu/101")), 80)])
    await ProjectionRunner(timeline).catch_up()
    second = await inventory(timeline, limit=1, cursor=first.next_cursor)
    assert [r.id for r in second.items] == [SNAP]
    assert second.position == first.position
    assert second.next_cursor is None
    assert len((await inventory(timeline)).items) == 3


async def test_a_filtered_page_keeps_its_point_past_later_events(timeline: EventStore) -> None:
    # On PostgreSQL a filtered page at a time is one index scan of the spans holding then; a
    # change appended after the first page, yet effective before its time, ends such a span
    # after the page's position: the next page must still answer as of that position.
    first = await inventory(timeline, at=at(100), q="lab/", limit=1)
    assert [r.id for r in first.items] == [WEB]
    await timeline.append([new(SNAP, Renamed(changes=change("name", "before-upgrade", "x")), 90)])
    await ProjectionRunner(timeline).catch_up()
    second = await inventory(timeline, q="lab/", limit=1, cursor=first.next_cursor)
    # its state as of the first page's position (valid until the change, as now known)
    assert [(r.id, r.name, r.valid_until) for r in second.items] == [
        (SNAP, "before-upgrade", at(90))
    ]
    assert second.position == first.position
    later = await inventory(timeline, at=at(100), q="lab/")
    assert [(r.id, r.name) for r in later.items] == [(WEB, "www"), (SNAP, "x")]


async def test_the_whole_inventory_in_one_page(timeline: EventStore) -> None:
    for seconds in (5, 10, 15, 20, 29.999, 30, 45, 50, 55, 60, 65, 70, 75):
        whole = await inventory(timeline, at=at(seconds), limit=None)
        assert whole.next_cursor is None
        assert whole.items == (await inventory(timeline, at=at(seconds), limit=1000)).items
    assert [r.id for r in (await inventory(timeline, limit=None)).items] == [WEB, SNAP]


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_postgresql_reads_the_inventory_at_a_time_by_the_span_index(
    timeline: EventStore,
) -> None:
    """An index of PostgreSQL's migration only: the test runs on PostgreSQL alone."""
    assert timeline.dialect == "postgresql"
    dialect = dialect_for(timeline)
    sql, args = versions_sql(dialect, Point(at(55), at(55), 10), observed=False)
    async with timeline.transaction() as conn:
        # A few rows: forbid the other ways, so that only a mismatch of the query's
        # expression and the index's leaves the index unused.
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_indexscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + sql, args))
    assert "Bitmap Index Scan on proj_versions_span" in plan


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_postgresql_compares_ids_byte_for_byte_also_after_a_rebuild(
    timeline: EventStore,
) -> None:
    """Every id column is COLLATE "C" (migration 0201), so ids sort as on SQLite whatever the
    database's locale, also in the tables a rebuild swaps in."""
    assert timeline.dialect == "postgresql"
    before = await inventory(timeline, at=at(55), limit=None)
    await rebuild(timeline)
    async with timeline.read_connection() as conn:
        rows = await conn.fetch(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name IN "
            "('resource_id', 'from_id', 'to_id') ORDER BY table_name, column_name"
        )
    assert [tuple(row) for row in rows] == [
        ("observations", "resource_id", "C"),
        ("proj_configs", "resource_id", "C"),
        ("proj_edges", "from_id", "C"),
        ("proj_edges", "to_id", "C"),
        ("proj_resources", "resource_id", "C"),
        ("proj_versions", "resource_id", "C"),
        # the SQL view recreated by the rebuild's swap (docs/sql.md) keeps the tables' too
        ("pvetrail_edges", "from_id", "C"),
        ("pvetrail_edges", "to_id", "C"),
    ]
    after = await inventory(timeline, at=at(55), limit=None)
    assert after.items == before.items
    assert [r.id for r in after.items] == sorted(r.id for r in after.items)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_walks_the_resources_by_their_covering_index_after_a_rebuild(
    timeline: EventStore,
) -> None:
    """SQLite's whole inventory reads proj_resources through proj_resources_scan only (its
    wide rows stay unread), also once a rebuild has replaced the table and its indexes; and
    the readers use the configured mapping (none: mapped pages would count in the RSS)."""
    assert timeline.dialect == "sqlite"
    before = await inventory(timeline, at=at(55), limit=None)
    await rebuild(timeline)
    dialect = dialect_for(timeline)
    sql, args = versions_sql(dialect, Point(at(55), at(55), 10), observed=True)
    async with timeline.read_connection() as conn:
        plan = [row[3] for row in await conn.fetch("EXPLAIN QUERY PLAN " + sql, args)]
        [[mapped]] = await conn.fetch("PRAGMA mmap_size", ())
    assert any(
        step.startswith("SCAN r USING COVERING INDEX proj_resources_scan") for step in plan
    ), plan
    assert mapped == READ_MMAP_BYTES
    assert (await inventory(timeline, at=at(55), limit=None)).items == before.items
    assert len(before.items) == 3


async def test_bad_parameters(timeline: EventStore) -> None:
    with pytest.raises(InvalidParameterError) as both:
        await inventory(timeline, at=at(10), position=3)
    assert both.value.param == "position"
    assert both.value.status == 400
    for limit in (0, 1001):
        with pytest.raises(InvalidParameterError) as bad_limit:
            await inventory(timeline, limit=limit)
        assert bad_limit.value.param == "limit"
    for cursor in ("!!!", "e30", "WyJoaXN0IiwxXQ"):
        with pytest.raises(InvalidParameterError) as bad_cursor:
            await inventory(timeline, cursor=cursor)
        assert bad_cursor.value.param == "cursor"
    future = utcnow() + timedelta(hours=1)
    with pytest.raises(UnprocessableError) as future_at:
        await inventory(timeline, at=future)
    assert future_at.value.status == 422
    assert future_at.value.param == "at"
    with pytest.raises(UnprocessableError) as past_head:
        await resource_at(timeline, WEB, position=11)  # past the head
    assert (type(past_head.value), past_head.value.status) == (UnprocessableError, 422)
    assert past_head.value.param == "position"
    with pytest.raises(UnprocessableError) as future_until:
        await changes(timeline, since=at(0), until=future)
    assert (type(future_until.value), future_until.value.status) == (UnprocessableError, 422)
    assert future_until.value.param == "until"
    with pytest.raises(QueryError) as future_since:
        await history(timeline, WEB, since=future)
    assert (type(future_since.value), future_since.value.status) == (UnprocessableError, 422)
    assert future_since.value.param == "since"


async def test_resource_at_and_not_found(timeline: EventStore) -> None:
    assert (await resource_at(timeline, WEB, at=at(35))).node == "pve2"
    assert (await resource_at(timeline, DB, at=at(59))).status == "stopped"
    with pytest.raises(NotFoundError) as gone:
        await resource_at(timeline, DB, at=at(60))
    assert gone.value.status == 404
    assert (gone.value.first_seen, gone.value.last_seen) == (at(10), at(55))
    with pytest.raises(NotFoundError) as not_yet:
        await resource_at(timeline, SNAP, at=at(44))
    assert (not_yet.value.first_seen, not_yet.value.last_seen) == (at(45), at(45))
    with pytest.raises(NotFoundError) as never:
        await resource_at(timeline, "lab/qemu/999")
    assert never.value.first_seen is None


async def test_history(timeline: EventStore) -> None:
    page = await history(timeline, WEB)
    assert [e.event for e in page.items] == [
        "discovered",
        "config_changed",
        "migrated",
        "renamed",
        "tags_changed",
    ]
    discovered, memory, migrated = page.items[:3]
    assert {c.field for c in discovered.changes} >= {"name", "node", "config.memory", "tags"}
    assert all(c.old is None for c in discovered.changes)
    assert [(c.field, c.old, c.new) for c in memory.changes] == [
        ("config.memory", "2048", 4096),
        ("digest", None, "d2"),
    ]
    assert memory.actor == ROOT
    assert memory.observed_after == at(15)
    assert (migrated.observed_at, migrated.position) == (at(30), 4)
    window = await history(timeline, WEB, since=at(20), until=at(50))
    assert [e.event for e in window.items] == ["migrated", "renamed"]  # (since, until]
    removal = (await history(timeline, DB)).items[-1]
    assert (removal.event, removal.changes) == ("removed", [])
    first = await history(timeline, WEB, limit=2)
    second = await history(timeline, WEB, limit=2, cursor=first.next_cursor)
    third = await history(timeline, WEB, limit=2, cursor=second.next_cursor)
    assert [e.position for e in first.items + second.items + third.items] == [
        e.position for e in page.items
    ]
    assert third.next_cursor is None
    with pytest.raises(InvalidParameterError):
        await history(timeline, DB, cursor=first.next_cursor)  # another resource's cursor
    with pytest.raises(NotFoundError):
        await history(timeline, "lab/qemu/999")


async def test_net_changes(timeline: EventStore) -> None:
    page = await changes(timeline, since=at(10), until=at(60))
    by_id = {c.id: c for c in page.items}
    assert by_id[WEB].change == "changed"
    assert {c.field for c in by_id[WEB].changes} == {"config.memory", "node", "name", "digest"}
    assert by_id[DB].change == "removed"
    assert by_id[SNAP].change == "created"
    assert [c.change for c in (await changes(timeline, since=at(0), until=at(10))).items] == [
        "created",
        "created",
    ]
    # 10 is excluded: nothing changed in (10, 15]
    assert (await changes(timeline, since=at(10), until=at(15))).items == []
    only_lxc = await changes(timeline, since=at(30), until=at(60), type="lxc")
    assert [c.id for c in only_lxc.items] == [DB]
    first = await changes(timeline, since=at(10), limit=1)
    rest = await changes(timeline, since=at(10), limit=1, cursor=first.next_cursor)
    rest2 = await changes(timeline, since=at(10), limit=1, cursor=rest.next_cursor)
    assert [c.id for c in first.items + rest.items + rest2.items] == [DB, WEB, SNAP]


async def test_a_difference_of_type_alone_is_no_change(store: EventStore) -> None:
    await store.append(
        [
            new(WEB, Discovered(state=guest_state(WEB, config={"memory": 4})), 1),
            new(WEB, ConfigChanged(changes=change("config.memory", 4, "4")), 2),
        ]
    )
    await ProjectionRunner(store).catch_up()
    assert (await changes(store, since=at(1), until=at(3))).items == []


async def test_relations(timeline: EventStore) -> None:
    graph = await relations(timeline, at=at(10))
    edges = {(e.from_, e.rel, e.to) for e in graph.edges}
    assert edges == {
        (WEB, "runs_on", "lab/node/pve1"),
        (WEB, "uses_storage", "lab/storage/pve1/local-lvm"),
        (WEB, "uses_storage", "lab/storage/pve1/ceph"),
        (WEB, "uses_storage", "lab/storage/pve1/local"),  # the iso names a volume
        (WEB, "attached_to", "lab/network/pve1/vmbr0"),
        (WEB, "attached_to", "lab/network/pve1/vmbr1"),
        (DB, "runs_on", "lab/node/pve1"),
        (DB, "uses_storage", "lab/storage/pve1/local-zfs"),  # not the host bind mount
        (DB, "attached_to", "lab/network/pve1/vmbr0"),
    }
    web_nics = {
        e.attrs["key"]: e.attrs["tag"]
        for e in graph.edges
        if e.rel == "attached_to" and e.from_ == WEB
    }
    assert web_nics == {"net0": 20, "net1": None}
    lvm = next(e for e in graph.edges if e.to == "lab/storage/pve1/local-lvm")
    assert lvm.attrs == {
        "keys": ["efidisk0", "scsi0"],
        "volumes": ["local-lvm:vm-100-disk-0", "local-lvm:vm-100-disk-2"],
    }
    assert lvm.since == at(10)
    assert lvm.until == at(30)
    later = await relations(timeline, at=at(55))
    assert {(e.from_, e.rel, e.to) for e in later.edges if e.from_ == DB} >= {
        (DB, "member_of", "lab/pool/prod")
    }
    assert (SNAP, "snapshot_of", WEB) in {(e.from_, e.rel, e.to) for e in later.edges}
    around = await relations(timeline, at=at(55), id=WEB)
    assert all(WEB in (e.from_, e.to) for e in around.edges)
    assert (SNAP, "snapshot_of", WEB) in {(e.from_, e.rel, e.to) for e in around.edges}
    assert ("lab/node/pve2") in {e.to for e in around.edges}
    now = await relations(timeline)
    assert DB not in {e.from_ for e in now.edges}
    with pytest.raises(NotFoundError):
        await relations(timeline, id="lab/qemu/999")


async def test_removed_resources_are_marked_not_forgotten(timeline: EventStore) -> None:
    then = {r.id: r for r in (await inventory(timeline, at=at(65), include_removed=True)).items}
    assert then[DB].removed
    assert then[DB].status == "stopped"  # its last state
    assert then[DB].valid_until == at(60)
    assert not then[WEB].removed
    before = {r.id: r for r in (await inventory(timeline, at=at(55), include_removed=True)).items}
    assert not before[DB].removed
    now = await inventory(timeline, include_removed=True)
    assert [(r.id, r.removed) for r in now.items] == [(DB, True), (WEB, False), (SNAP, False)]
    assert (await inventory(timeline, position=2, include_removed=True)).items[0].removed is False
