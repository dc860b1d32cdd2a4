"""Observation windows are honest by construction (DESIGN invariant 6), on SQLite and PostgreSQL.

The time a change was made always lies in ``(observed_after, observed_at]``: ``observed_after``
no later than the sending of the request whose answer last showed the old state, per data
source, and ``observed_at`` no earlier than the arrival of the answer that showed the new one.
The changes are made while a slow deep poll is in flight (fakepve's ``slow_network`` on one
node, in PVE seconds scaled by ``time_scale``): part of what the poll reads was answered before
the change, part after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from collector_helpers import Seen, not_tasks, read_events

from collectors.service import CollectorService
from eventstore import EventStore
from tests.collectors.conftest import CollectorFactory
from tests.pve import ServedPve

LATENCY_S = 0.6  # pve2's answers; pve1's and the cluster-wide ones come at once
IN_FLIGHT_S = 0.25  # when the change is made: pve1 answered, pve2 not yet

Change = Callable[[], None]


async def _change_during_a_slow_poll(
    served: ServedPve, collector: CollectorService, change: Change
) -> tuple[float, float]:
    """Start a deep poll, make the change while it waits for pve2, let it end; (t0, t1)."""
    poll = asyncio.create_task(collector.sync("lab", deep=True))
    await asyncio.sleep(IN_FLIGHT_S)
    assert not poll.done()

    async def on_the_fake() -> tuple[float, float]:
        before = time.time()
        change()
        return before, time.time()

    t0, t1 = served.run(on_the_fake())
    result = await poll
    assert result.ok
    return t0, t1


async def _slowed(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> tuple[CollectorService, int]:
    """A collector that has seen the cluster once; then pve2 answers slowly. (It, the head.)"""
    collector = make_collector()
    await collector.sync("lab", deep=True)
    served.pve.time_scale = 1.0
    served.pve.slow_network(LATENCY_S, node="pve2")
    return collector, await store.head()


def _assert_honest(events: list[Seen], t0: float, t1: float) -> None:
    for seen in events:
        after, at = seen.recorded.observed_after, seen.recorded.observed_at
        assert after is not None, (seen.stream, seen.type)
        assert after.timestamp() < t0, (seen.stream, seen.type, after, t0)
        assert t1 <= at.timestamp(), (seen.stream, seen.type, at, t1)


async def test_every_kind_of_change_made_during_a_slow_poll_lies_in_its_window(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    pve = served.pve
    collector, head = await _slowed(store, make_collector, served)

    def first() -> None:
        web = pve.vm(100)
        web.name = web.config["name"] = "web-2"  # renamed
        web.config["tags"] = "prod;web;new"  # tags_changed
        web.status = web.qmpstatus = "stopped"  # status_changed
        web.lock = web.config["lock"] = "backup"  # lock_taken
        web.config["description"] = "changed"  # config_changed
        web.pending["cores"] = "4"  # pending_change_seen
        web.pool = None  # pool_changed, and the pool's members (fields_changed)
        pve.pools["prod"].discard(100)
        web.snapshots["after"] = {"cores": 2, "snaptime": int(time.time()), "parent": None}
        del web.snapshots["before-upgrade"]  # snapshot_created, snapshot_removed
        pve.vm(101).node = "pve1"  # migrated
        pve.add_vm(102, "new", node="pve1", status="running", config={"cores": 1})  # discovered
        pve.cts.remove(pve.guest(200))  # removed
        volumes = pve.storages["local"]["volumes"]
        volumes.pop("backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst")  # backup_removed
        pve.store_file("local", "vzdump-qemu-101-2026_12_01-00_00_01.vma.zst", 1, "backup")

    t0, t1 = await _change_during_a_slow_poll(served, collector, first)
    await collector.sync("lab")  # the fast poll's source, then the deep ones'
    await collector.sync("lab", deep=True)
    events = not_tasks(await read_events(store, head))
    _assert_honest(events, t0, t1)
    assert {e.type for e in events} >= {
        "renamed",
        "tags_changed",
        "status_changed",
        "lock_taken",
        "config_changed",
        "pending_change_seen",
        "pool_changed",
        "fields_changed",
        "snapshot_created",
        "snapshot_removed",
        "migrated",
        "discovered",
        "removed",
        "backup_seen",
        "backup_removed",
    }

    head = await store.head()

    def second() -> None:
        web = pve.vm(100)
        web.lock = None  # lock_released
        web.config.pop("lock", None)
        web.apply_pending()  # pending_change_applied

    t0, t1 = await _change_during_a_slow_poll(served, collector, second)
    await collector.sync("lab", deep=True)
    events = not_tasks(await read_events(store, head))
    _assert_honest(events, t0, t1)
    assert {e.type for e in events} >= {"lock_released", "pending_change_applied"}


async def test_a_change_a_slow_poll_saw_after_it_was_made_lies_in_that_polls_window(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    pve = served.pve
    collector, head = await _slowed(store, make_collector, served)

    def change() -> None:  # pve2's config answer is still to come: this poll sees it
        pve.vm(101).config["cores"] = "6"

    t0, t1 = await _change_during_a_slow_poll(served, collector, change)
    events = not_tasks(await read_events(store, head))
    assert [(e.stream, e.type) for e in events] == [("lab/qemu/101", "config_changed")]
    _assert_honest(events, t0, t1)


@pytest.mark.parametrize("restart", [False, True])
async def test_a_new_guest_is_bounded_by_the_last_complete_listing_that_did_not_show_it(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve, restart: bool
) -> None:
    pve = served.pve
    collector = make_collector()
    await collector.sync("lab", deep=True)
    t0 = time.time()
    pve.add_vm(103, "late", node="pve2", status="stopped", config={"cores": 1})
    t1 = time.time()
    pve.fail("GET", "/nodes/pve2/qemu/103/config", 500, "boom")  # seen, not yet recorded
    first = await collector.sync("lab", deep=True)
    assert first.ok
    assert "lab/qemu/103" not in {e.stream for e in await read_events(store)}
    pve.failures.clear()
    if restart:  # a new process knows the listings from the observations table only
        collector = make_collector()
    await collector.sync("lab", deep=True)
    found = [e for e in await read_events(store) if e.stream == "lab/qemu/103"]
    assert [e.type for e in found] == ["discovered"]
    # the poll that listed it but could not read its config does not bound it
    after = found[0].recorded.observed_after
    if restart:
        assert after is None  # when it first appeared was forgotten: nothing bounds it
    else:
        _assert_honest(found, t0, t1)
