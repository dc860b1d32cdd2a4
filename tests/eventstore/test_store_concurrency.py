"""Concurrent appenders and a reader following the log: nothing missed, nothing twice.

Each writer and the reader use a store object of their own (their own pool or connections),
as separate processes would; on SQLite that is two writers on one file taking turns through
``BEGIN IMMEDIATE``, on PostgreSQL through the append advisory lock.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from store_helpers import new_event

from eventstore import EventStore, RecordedEvent, open_store

SLOW_BATCHES = 12
SLOW_BATCH_SIZE = 250  # large enough for PostgreSQL's COPY path
FAST_APPENDS = 150


async def test_concurrent_writers_and_a_following_reader_miss_nothing(
    store: EventStore, database_url: str
) -> None:
    slow_store = await open_store(database_url)
    fast_store = await open_store(database_url)
    reader_store = await open_store(database_url)
    total = SLOW_BATCHES * SLOW_BATCH_SIZE + FAST_APPENDS
    seen: list[RecordedEvent] = []

    async def slow_writer() -> None:
        """Big batches, each across many streams, with pauses."""
        for b in range(SLOW_BATCHES):
            batch = [new_event(f"slow/{i % 40}", b) for i in range(SLOW_BATCH_SIZE)]
            await slow_store.append(batch)
            await asyncio.sleep(0.01)

    async def fast_writer() -> None:
        """One event per transaction on one stream, each with its expected version."""
        for n in range(FAST_APPENDS):
            await fast_store.append([new_event("fast", n, expected=n)])

    async def reader() -> None:
        """Follow ``position > last`` as a projection would, waking on new events."""
        last = 0
        while len(seen) < total:
            head = await reader_store.wait_for_events(last, 5)
            if head <= last:
                continue
            async for event in reader_store.read_all(last, batch_size=97):
                assert event.position == last + 1, f"gap or repeat after {last}"
                seen.append(event)
                last = event.position

    try:
        await asyncio.wait_for(asyncio.gather(slow_writer(), fast_writer(), reader()), 60)
    finally:
        for s in (slow_store, fast_store, reader_store):
            await s.close()

    assert [e.position for e in seen] == list(range(1, total + 1))
    assert len({(e.stream_id, e.version) for e in seen}) == total
    per_stream = Counter(e.stream_id for e in seen)
    assert per_stream["fast"] == FAST_APPENDS
    for stream_id, count in per_stream.items():
        versions = [e.version for e in seen if e.stream_id == stream_id]
        assert versions == list(range(1, count + 1)), stream_id
    assert [e async for e in store.read_all()] == seen
    assert (await store.verify()).ok


async def test_concurrent_appends_through_one_store_object(store: EventStore) -> None:
    """Many tasks sharing one store (one pool, or SQLite's one writer connection)."""

    async def writer(w: int) -> None:
        for n in range(20):
            await store.append([new_event(f"w{w}", n, expected=n), new_event("shared", n)])

    await asyncio.gather(*(writer(w) for w in range(8)))
    events = [e async for e in store.read_all()]
    assert [e.position for e in events] == list(range(1, 321))
    assert await store.stream_versions(["shared", "w0", "w7"]) == {
        "shared": 160,
        "w0": 20,
        "w7": 20,
    }
    assert (await store.verify()).ok
