"""Tamper evidence beyond the hash: edits that move events between resources, forged rows,
version gaps and repeats, inserts and reorders inside the log, each reported with its position.

The log here is ``varied_events(6)``: positions 1-6 on streams ``lab/qemu/100`` (1, 4),
``lab/qemu/101`` (2, 5) and ``lab/qemu/102`` (3, 6), each at versions 1 and 2. Every test drops
the append-only triggers first (what an attacker with write access would do).
"""

from __future__ import annotations

import msgspec
import pytest
from store_helpers import (
    drop_append_only_triggers,
    insert_event_row,
    new_event,
    raw_execute,
    raw_fetch,
    varied_events,
)

from eventstore import EventStore, RecordedEvent
from eventstore.store import recompute_hash


async def _tampered_log(store: EventStore) -> list[RecordedEvent]:
    recorded = await store.append(varied_events(6))
    assert (await store.verify()).ok
    await drop_append_only_triggers(store)
    return recorded


async def _key_of(store: EventStore, stream_id: str) -> int:
    [(key,)] = await raw_fetch(
        store, "SELECT stream_key FROM streams WHERE stream_id = ?", stream_id
    )
    return int(key)


def _forged(event: RecordedEvent, **changes: object) -> RecordedEvent:
    """The event with some fields changed and its hash recomputed, as a forger would."""
    fields = {f: getattr(event, f) for f in event.__struct_fields__}
    fields.update(changes)
    draft = RecordedEvent(**fields)
    return msgspec.structs.replace(draft, hash=recompute_hash(draft))


async def test_an_event_pointed_at_another_stream_is_caught(store: EventStore) -> None:
    """``events.stream_key`` is not hashed, but every read by resource goes through it."""
    await _tampered_log(store)
    await raw_execute(store, "INSERT INTO streams (stream_key, stream_id) VALUES (99, 'lab/x')")
    await raw_execute(store, "UPDATE events SET stream_key = 99 WHERE position = 5")
    # The edit worked: the other resource's history now shows the event.
    assert [e.position for e in await store.read_stream("lab/x")] == [5]
    result = await store.verify()
    assert (result.ok, result.first_bad_position, result.checked) == (False, 5, 4)
    assert "no longer maps this event to its stream 'lab/qemu/101'" in (result.reason or "")


async def test_a_renamed_stream_is_caught_at_its_first_event(store: EventStore) -> None:
    await _tampered_log(store)
    await raw_execute(
        store, "UPDATE streams SET stream_id = 'lab/qemu/999' WHERE stream_id = 'lab/qemu/101'"
    )
    assert [e.position for e in await store.read_stream("lab/qemu/999")] == [2, 5]
    result = await store.verify()
    assert (result.ok, result.first_bad_position) == (False, 2)
    assert "streams table" in (result.reason or "")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_stream_row_that_claims_another_streams_id_is_caught(store: EventStore) -> None:
    """With the unique key dropped (SQLite declares it inline: it cannot be dropped there), a
    second ``streams`` row can claim an id."""
    await _tampered_log(store)
    await raw_execute(store, "ALTER TABLE streams DROP CONSTRAINT streams_stream_id_key")
    key = await _key_of(store, "lab/qemu/102")
    await raw_execute(
        store, "INSERT INTO streams (stream_key, stream_id) VALUES (77, 'lab/qemu/102')"
    )
    await raw_execute(store, "UPDATE events SET stream_key = 77 WHERE position = 6")
    await raw_execute(store, "UPDATE streams SET stream_id = 'lab/y' WHERE stream_key = ?", key)
    result = await store.verify()
    assert (result.ok, result.first_bad_position) == (False, 3)


async def test_a_forged_event_with_a_version_gap_is_caught_even_with_a_valid_chain(
    store: EventStore,
) -> None:
    """A forger who appends a well-chained, well-hashed row still cannot skip a version."""
    recorded = await _tampered_log(store)
    last = recorded[-1]
    forged = _forged(
        last,
        position=7,
        stream_id="lab/qemu/100",
        version=4,  # 3 comes next
        prev_hash=last.hash,
        data=b'{"forged":true}',
    )
    await insert_event_row(store, forged, await _key_of(store, "lab/qemu/100"))
    result = await store.verify()
    assert (result.ok, result.first_bad_position, result.checked) == (False, 7, 6)
    assert "version 4 where 3 comes next" in (result.reason or "")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_repeated_version_is_caught(store: EventStore) -> None:
    """Only possible with the (stream, version) key dropped: PostgreSQL lets a forger."""
    recorded = await _tampered_log(store)
    await raw_execute(store, "ALTER TABLE events DROP CONSTRAINT events_stream_version")
    last = recorded[-1]
    forged = _forged(last, position=7, version=2, prev_hash=last.hash)  # lab/qemu/102 v2 again
    await insert_event_row(store, forged, await _key_of(store, "lab/qemu/102"))
    result = await store.verify()
    assert (result.ok, result.first_bad_position) == (False, 7)
    assert "version 2 where 3 comes next" in (result.reason or "")


async def test_an_event_inserted_inside_the_log_is_caught_at_its_position(
    store: EventStore,
) -> None:
    recorded = await _tampered_log(store)
    # Make room at position 4 (from the top down: positions are a key), then forge into it.
    for position in (6, 5, 4):
        await raw_execute(
            store, "UPDATE events SET position = ? WHERE position = ?", position + 1, position
        )
    third = recorded[2]
    forged = _forged(
        new_event_like(third), position=4, prev_hash=third.hash, stream_id="lab/qemu/103"
    )
    await raw_execute(
        store, "INSERT INTO streams (stream_key, stream_id) VALUES (50, 'lab/qemu/103')"
    )
    await insert_event_row(store, forged, 50)
    result = await store.verify()
    assert (result.ok, result.first_bad_position) == (False, 5)  # 4 chains; 5 (old 4) cannot
    assert "does not match" in (result.reason or "")


def new_event_like(event: RecordedEvent) -> RecordedEvent:
    """A plausible new discovery, shaped like ``event``."""
    return msgspec.structs.replace(event, version=1, type="discovered", data=b'{"new":1}')


async def test_two_events_swapped_are_caught_at_the_first(store: EventStore) -> None:
    await _tampered_log(store)
    for position, to in ((2, 100), (3, 2), (100, 3)):
        await raw_execute(store, "UPDATE events SET position = ? WHERE position = ?", to, position)
    result = await store.verify()
    assert (result.ok, result.first_bad_position) == (False, 2)


async def test_a_cut_tail_is_a_valid_shorter_chain(store: EventStore) -> None:
    """Nothing inside the log can show a cut tail (or a re-hashed one): ``verify --anchor``
    does (tests/eventstore/test_store_integrity.py), as docs/event-format.md says."""
    await _tampered_log(store)
    await store.append([new_event("lab/qemu/100", 40)])
    await raw_execute(store, "DELETE FROM events WHERE position > 4")
    result = await store.verify()
    assert (result.ok, result.checked, result.head) == (True, 4, 4)
