"""The runner and the rebuild on both backends: rows, checkpoints, invariant 2, stops, locks."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from collectors.events import ConfigChanged, Discovered, Removed, Renamed, StatusChanged
from eventstore import EventStore, NewEvent, open_store
from projections.errors import ProjectionStateError, ProjectionStoppedError
from projections.queries import inventory, resource_at
from projections.runner import SHADOW_SUFFIX, ProjectionRunner, rebuild
from tests.projections.projection_helpers import (
    at,
    change,
    guest_state,
    naive_states,
    new,
    normalise,
    random_events,
    read_log,
    resource_state,
    runner_lock_contenders,
    table_rows,
)
from tests.waiting import GENEROUS_S, until

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
    async with store.read_connection() as conn:
        for table in ("proj_resources", "proj_versions", "proj_configs", "proj_edges"):
            assert not await conn.table_exists(table + SHADOW_SUFFIX)


async def test_a_rebuild_restores_the_writers_settings(sqlite_url: str) -> None:
    """SQLite: a rebuild tunes the writer connection (page cache, no zeroing of the pages its
    DROPs free) and gives each setting back afterwards."""
    store = await open_store(sqlite_url)
    try:
        await store.migrate()
        settings = ("cache_size", "temp_store", "secure_delete")

        async def current() -> list[object]:
            async with store.transaction() as conn:
                return [(await conn.fetch(f"PRAGMA {name}"))[0][0] for name in settings]

        before = await current()
        await store.append([new(VM, Discovered(state=guest_state(VM)), 1)])
        await rebuild(store)
        await rebuild(store)  # the second swap drops the first one's tables
        assert await current() == before
    finally:
        await store.close()


async def test_runner_follows_the_log_and_one_stands_by_then_takes_over(
    store: EventStore, database_url: str
) -> None:
    """One runner per database applies events; a second (another process: its own store
    object) asks for the runner lock, is refused and stands by; when the first stops, the
    second takes over and applies what is appended after."""
    other = await open_store(database_url)
    first = ProjectionRunner(store, idle_timeout=0.5, standby_interval=0.2)
    second = ProjectionRunner(other, idle_timeout=0.5, standby_interval=0.2)
    await first.start()
    try:
        await until(lambda: first.active, what="the first runner active")
        await second.start()
        await store.append([new(VM, Discovered(state=guest_state(VM)), 1)])
        assert await first.wait_until(1, timeout=GENEROUS_S)
        page = await inventory(store)
        assert [r.id for r in page.items] == [VM]

        async def second_refused() -> bool:
            return await runner_lock_contenders(store) == 2

        # Seen from outside: the holder's and the second's attempt, both on the lock.
        await until(second_refused, what="the second runner asking for the runner lock")
        assert first.active
        assert not second.active  # stand-by: the lock is held
        assert second.position is None  # and it applied nothing

        await first.stop()
        await until(lambda: second.active, what="the second runner taking over")
        [renamed] = await store.append(
            [new(VM, Renamed(changes=change("name", "vm100", "web")), 2)]
        )
        assert await second.wait_until(renamed.position, timeout=GENEROUS_S)
        assert (await resource_at(store, VM)).name == "web"
        assert not first.active
    finally:
        await first.stop()
        await second.stop()
        await other.close()
    assert not first.active
    assert not second.active


async def test_rebuild_while_the_runner_runs_never_shows_half(store: EventStore) -> None:
    """A rebuild swaps its tables in at once, while the runner runs and events keep being
    appended: every answer a reader gets, during and after, is what a naive fold of the log
    gives at that answer's position (content, not counts)."""
    rng = random.Random(9)
    events = random_events(rng, 600)
    await store.append(events[:300])
    runner = ProjectionRunner(store, idle_timeout=0.2)
    await runner.catch_up()
    await runner.start()
    answers: list[tuple[int, dict[str, dict[str, Any]]]] = []
    rebuilding = asyncio.Event()
    done = asyncio.Event()
    appended_during: list[int] = []

    async def read_all_the_time() -> None:
        while not done.is_set():
            page = await inventory(store, limit=1000)
            answers.append((page.position, {r.id: resource_state(r) for r in page.items}))
            await asyncio.sleep(0)

    async def append_while_rebuilding() -> None:
        await rebuilding.wait()
        for start in range(300, len(events), 10):
            [*_, last] = await store.append(events[start : start + 10])
            if not done.is_set():
                appended_during.append(last.position)
            await asyncio.sleep(0.01)

    reader = asyncio.create_task(read_all_the_time())
    appender = asyncio.create_task(append_while_rebuilding())
    try:
        await rebuild(store, batch_size=17, progress=lambda _done, _total: rebuilding.set())
        during = len(answers)
        done.set()
        await reader
        await appender
        assert await runner.wait_until(await store.head(), timeout=GENEROUS_S)
        final = await inventory(store, limit=1000)
    finally:
        done.set()
        reader.cancel()
        appender.cancel()
        await runner.stop()
    assert appended_during, "nothing was appended while the rebuild ran"
    assert during > 3
    log = await read_log(store)
    assert final.position == len(log) == len(events)
    answers.append((final.position, {r.id: resource_state(r) for r in final.items}))
    for position, seen in answers:
        expected = {rid: normalise(s) for rid, s in naive_states(log, p=position).items()}
        assert seen == expected, f"inventory at position {position}"


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
