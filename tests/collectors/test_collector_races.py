"""Invariant 3 when another writer appends first: a poll whose append meets a
:class:`ConcurrencyError` re-reads the log and re-diffs, so nothing is appended twice and
nothing it saw is lost (``collectors/service.py``, ``CollectorService._append``)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from collector_helpers import not_tasks, read_events, until

from collectors import events as ev
from collectors.state import Known
from eventstore import EventStore, NewEvent, open_store, utcnow
from tests.collectors.conftest import CollectorFactory
from tests.pve import ServedPve
from tests.waiting import GENEROUS_S

WEB, DB = "lab/qemu/100", "lab/qemu/101"  # on pve1 and on pve2


async def test_a_poll_that_loses_the_append_race_rereads_and_appends_each_change_once(
    store: EventStore,
    database_url: str,
    make_collector: CollectorFactory,
    served: ServedPve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The collector reads the log, then observes; while it waits for pve2, another writer
    (a second process, on its own connection) appends the change to VM 101 that the poll is
    about to append. The poll's append then meets the other's version, re-reads the log and
    appends only what is still missing."""
    caplog.set_level(logging.INFO, logger="collectors.service")
    collector = make_collector()
    pve = served.pve
    await collector.sync("lab", deep=True)
    head = await store.head()
    pve.vm(100).config["memory"] = 4096
    pve.vm(101).config["cores"] = 12

    # Requests about pve2 are held 5 s (before fakepve records them): the poll has read the
    # log and is observing when its first requests about a node arrive.
    pve.time_scale = 1.0
    pve.slow_network(5.0, node="pve2")
    pve.requests.clear()
    poll = asyncio.create_task(collector.sync("lab", deep=True))
    await until(lambda: any("/nodes/" in path for _, path, _ in pve.requests), GENEROUS_S)

    other = await open_store(database_url)
    try:
        version = (await other.stream_versions([DB]))[DB]
        theirs = ev.ConfigChanged(changes=[ev.FieldChange("config.cores", 1, 12)])
        [raced] = await other.append(
            [
                NewEvent(
                    stream_id=DB,
                    type=ev.type_of(theirs),
                    data=ev.encode(theirs),
                    observed_at=utcnow(),
                    expected_version=version,
                    schema_version=ev.SCHEMA_VERSION,
                )
            ]
        )
    finally:
        await other.close()
    # The other writer was first: the poll had not appended (it still waits for pve2).
    assert not poll.done()
    assert not any("/nodes/pve2/" in path for _, path, _ in pve.requests)
    pve.slow_network(0.0, node="pve2")  # (the requests already held still take their 5 s)
    pve.time_scale = 0.0
    result = await asyncio.wait_for(poll, GENEROUS_S)

    assert result.ok, result.faults
    assert "another writer appended first; re-reading the log" in caplog.text  # the retry ran
    assert result.first_position is not None
    assert result.first_position > raced.position
    events = not_tasks(await read_events(store, head))
    cores = [e for e in events if "config.cores" in e.changes()]
    memory = [e for e in events if "config.memory" in e.changes()]
    # No duplicate: the cores change is in the log once (the other writer's); no loss: the
    # poll appended the rest of what it saw (VM 100's memory, VM 101's new digest).
    assert [(e.stream, e.recorded.position) for e in cores] == [(DB, raced.position)]
    assert [(e.stream, str(e.changes()["config.memory"][1])) for e in memory] == [(WEB, "4096")]
    assert [e.stream for e in events if e.recorded.position > raced.position].count(DB) == 1
    assert result.events_appended == len(await read_events(store, raced.position))
    # The log folds to what Proxmox shows: the next poll finds nothing to append.
    folded = Known("lab")
    async for recorded in store.read_all(0):
        folded.apply(recorded)
    assert str(folded.states[DB]["config"]["cores"]) == "12"  # (Proxmox writes numbers as text)
    assert str(folded.states[WEB]["config"]["memory"]) == "4096"
    again = await collector.sync("lab", deep=True)
    assert again.ok
    assert again.events_appended == 0
    assert (await store.verify()).ok
