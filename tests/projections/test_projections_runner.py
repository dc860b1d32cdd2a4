"""The runner and the rebuild on both backends: rows, checkpoints, invariant 2, stops, locks."""

from __future__ import annotations

import asyncio
import random

import pytest

from collectors.events import ConfigChanged, Discovered, Removed, StatusChanged
from eventstore import EventStore, NewEvent, open_store
from projections.dialects import dialect_for
from projections.errors import ProjectionStateError, ProjectionStoppedError
from projections.queries import inventory
from projections.runner import SHADOW_SUFFIX, ProjectionRunner, rebuild
from tests.projections.projection_helpers import (
    at,
    change,
    guest_state,
    new,
    random_events,
    table_rows,
)

VM = "lab/qemu/100"


async def test_fold_writes_current_state_versions_and_edges(store: EventStore) -> None:
    config = {"scsi0": "local-lvm:vm-100-disk-0,size=32G", "net0": "virtio=AA,bridge=vmbr0,tag=10"}
    await store.append(
        [
            new(VM, Discovered(state=guest_state(VM, config=config)), 1),
            new(VM, StatusChanged(changes=change("status", "running", "stopped")), 2),
            new(VM, ConfigChanged(changes=change("config.memory", None, 2048)), 3),
            new(VM, Removed(), 5, observed_after=4),
        ]
    )
    runner = ProjectionRunner(store, batch_size=3)
    assert await runner.catch_up() == 4
    rows = await table_rows(store)
    [resource] = rows["proj_resources"]
    assert (resource[0], resource[6], resource[12]) == (VM, "stopped", 1)  # marked removed
    versions = rows["proj_versions"]
    assert [(v[1], v[2]) for v in versions] == [(1, 2), (2, 3), (3, 4)]
    edges = {(e[1], e[2], e[6]) for e in rows["proj_edges"]}
    assert edges == {
        ("attached_to", "lab/network/pve1/vmbr0", 4),
        ("runs_on", "lab/node/pve1", 4),
        ("uses_storage", "lab/storage/pve1/local-lvm", 4),
    }
    assert {name: pos for name, pos in rows["projection_checkpoints"]} == {
        "resources": 4,
        "versions": 4,
        "relations": 4,
    }
    lag = await runner.lag()
    assert (lag.head, lag.checkpoint, lag.seconds) == (4, 4, 0.0)


async def test_incremental_equals_rebuild(store: EventStore) -> None:
    """DESIGN.md invariant 2: rebuilding from scratch gives the rows incremental application
    gave, whatever the batch boundaries and however appends interleave with catching up."""
    rng = random.Random(4)
    events = random_events(rng, 400)
    runner = ProjectionRunner(store, batch_size=7)
    start = 0
    while start < len(events):
        size = rng.randint(1, 60)
        await store.append(events[start : start + size])
        start += size
        if rng.random() < 0.6:
            await runner.catch_up()
    await runner.catch_up()
    incremental = await table_rows(store)
    assert len(incremental["proj_versions"]) > 200
    result = await rebuild(store, batch_size=53)
    assert result.events == await store.head()
    assert await table_rows(store) == incremental
    # one projection alone, too
    await rebuild(store, ["relations"])
    assert await table_rows(store) == incremental


async def test_unknown_event_stops_the_projection_naming_the_position(store: EventStore) -> None:
    await store.append(
        [
            new(VM, Discovered(state=guest_state(VM)), 1),
            NewEvent(
                stream_id=VM,
                type="teleported",
                data=b"{}",
                observed_at=new(VM, Removed(), 2).observed_at,
            ),
            new(VM, Removed(), 3),
        ]
    )
    runner = ProjectionRunner(store)
    with pytest.raises(ProjectionStoppedError, match="position 2") as info:
        await runner.catch_up()
    assert info.value.position == 2
    assert runner.error is info.value
    assert (await runner.lag()).checkpoint == 1  # the event before it was applied
    with pytest.raises(ProjectionStoppedError, match="position 2"):
        await rebuild(store)
    assert (await runner.lag()).checkpoint == 1  # the failed rebuild swapped nothing in


async def test_newer_schema_version_stops_it_too(store: EventStore) -> None:
    event = new(VM, Discovered(state=guest_state(VM)), 1)
    await store.append(
        [
            NewEvent(
                **{**{f: getattr(event, f) for f in event.__struct_fields__}, "schema_version": 99}
            )
        ]
    )
    with pytest.raises(ProjectionStoppedError, match=r"position 1.*schema version 99"):
        await ProjectionRunner(store).catch_up()


@pytest.mark.parametrize(
    "data",
    [
        new(VM, Removed(), 2).data,  # another type's tag
        b'{"changes": []}',  # no tag at all
    ],
    ids=["another-tag", "no-tag"],
)
async def test_a_payload_not_of_its_type_stops_it_too(store: EventStore, data: bytes) -> None:
    """The fold decodes payloads itself and checks what it got against the envelope's type:
    a payload whose tag names another type, or that has none, stops as
    :func:`collectors.events.decode` stops it; it never folds."""
    await store.append(
        [
            new(VM, Discovered(state=guest_state(VM)), 1),
            NewEvent(stream_id=VM, type="status_changed", data=data, observed_at=at(2)),
        ]
    )
    with pytest.raises(ProjectionStoppedError, match=r"position 2.*status_changed"):
        await ProjectionRunner(store).catch_up()
    with pytest.raises(ProjectionStoppedError, match="position 2"):
        await rebuild(store)


async def test_a_rebuild_stopped_after_many_batches_leaves_no_shadow_tables(
    store: EventStore,
) -> None:
    """A rebuild that stops at a bad event while earlier batches are still being written
    (and the next one read) swaps nothing in and leaves none of its tables behind."""
    guests = [f"lab/qemu/{100 + n}" for n in range(40)]
    await store.append(
        [new(rid, Discovered(state=guest_state(rid)), n) for n, rid in enumerate(guests)]
    )
    await ProjectionRunner(store).catch_up()
    before = await table_rows(store)
    bad = NewEvent(stream_id=VM, type="teleported", data=b"{}", observed_at=at(50))
    await store.append([bad, *(new(rid, Removed(), 60) for rid in guests)])
    with pytest.raises(ProjectionStoppedError, match="position 41"):
        await rebuild(store, batch_size=3)
    assert await table_rows(store) == before
    dialect = dialect_for(store)
    async with store.read_connection() as conn:
        for table in ("proj_resources", "proj_versions", "proj_configs", "proj_edges"):
            assert not await dialect.table_exists(conn, table + SHADOW_SUFFIX)


async def test_a_rebuild_restores_the_writers_settings(sqlite_url: str) -> None:
    """SQLite: a rebuild tunes the writer connection (page cache, no zeroing of the pages its
    DROPs free) and gives each setting back afterwards."""
    store = await open_store(sqlite_url)
    try:
        await store.migrate()
        settings = ("cache_size", "temp_store", "secure_delete")
        dialect = dialect_for(store)

        async def current() -> list[object]:
            async with store.transaction() as conn:
                return [(await dialect.fetch(conn, f"PRAGMA {name}"))[0][0] for name in settings]

        before = await current()
        await store.append([new(VM, Discovered(state=guest_state(VM)), 1)])
        await rebuild(store)
        await rebuild(store)  # the second swap drops the first one's tables
        assert await current() == before
    finally:
        await store.close()


async def test_runner_follows_the_log_and_one_stands_by(store: EventStore) -> None:
    first = ProjectionRunner(store, idle_timeout=0.5, standby_interval=0.2)
    second = ProjectionRunner(store, idle_timeout=0.5, standby_interval=0.2)
    await first.start()
    try:
        for _ in range(50):
            if first.active:
                break
            await asyncio.sleep(0.05)
        assert first.active
        await second.start()
        await store.append([new(VM, Discovered(state=guest_state(VM)), 1)])
        assert await first.wait_until(1, timeout=10)
        page = await inventory(store)
        assert [r.id for r in page.items] == [VM]
        await asyncio.sleep(0.3)
        assert not second.active  # stand-by: the lock is held
    finally:
        await first.stop()
        await second.stop()
    assert not first.active


async def test_rebuild_while_the_runner_runs_never_shows_half(store: EventStore) -> None:
    rng = random.Random(9)
    await store.append(random_events(rng, 300))
    runner = ProjectionRunner(store, idle_timeout=0.2)
    await runner.catch_up()
    expected = await inventory(store, limit=1000)
    await runner.start()
    seen: list[int] = []
    done = asyncio.Event()

    async def read_all_the_time() -> None:
        while not done.is_set():
            page = await inventory(store, limit=1000)
            seen.append(len(page.items))
            await asyncio.sleep(0)

    reader = asyncio.create_task(read_all_the_time())
    try:
        await rebuild(store, batch_size=17)
    finally:
        done.set()
        await reader
        await runner.stop()
    assert len(seen) > 3
    assert set(seen) == {len(expected.items)}
    assert (await inventory(store, limit=1000)).items == expected.items


async def test_rebuild_rejects_an_unknown_name(store: EventStore) -> None:
    with pytest.raises(ProjectionStateError, match="unknown projection 'nope'"):
        await rebuild(store, ["nope"])


async def test_cancelling_mid_batch_loses_and_duplicates_nothing(store: EventStore) -> None:
    rng = random.Random(21)
    await store.append(random_events(rng, 600))
    runner = ProjectionRunner(store, batch_size=11)
    head = await store.head()
    # Cancel catch-ups after a delay that doubles while a cancel lands before the first
    # batch commits (how long that takes depends on the machine and its load), until three
    # cancels have landed part-way, each cutting the run short after some batches.
    cut_at: list[int] = []
    delay, last = 0.001, 0
    while sum(0 < position < head for position in cut_at) < 3 and delay < 10:
        task = asyncio.create_task(runner.catch_up())
        await asyncio.sleep(delay)
        if task.done():  # caught up before the cancel: nothing left to cut
            await task
            break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        position = await runner.checkpoint()
        cut_at.append(position)
        if position == last:
            delay *= 2
        last = position
    # At least one cancel must have landed part-way, or nothing here was tested.
    assert any(0 < position < head for position in cut_at), cut_at
    await runner.catch_up()
    after_cancels = await table_rows(store)
    await rebuild(store)
    assert await table_rows(store) == after_cancels
