"""The event store's contract, the same test functions on SQLite and on PostgreSQL.

Appends, positions, versions, atomic batches, reads, settings, waiting and named locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from datetime import datetime, timedelta

import msgspec
import pytest
from store_helpers import (
    T0,
    lock_waiters,
    new_event,
    raw_execute,
    raw_fetch,
    varied_events,
    when_writing,
    writing,
)

from eventstore import (
    GENESIS_HASH,
    Actor,
    ConcurrencyError,
    DatabaseUnavailableError,
    EventStore,
    EventStoreError,
    InvalidEventError,
    NewEvent,
    open_store,
)
from eventstore.sqlite import SQLiteEventStore
from tests.waiting import GENEROUS_S, until, until_waiting_for_events


def slow_periodic_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the stores' periodic head checks (PostgreSQL's fallback, SQLite's data_version)
    ten minutes apart: a waiter woken within :data:`GENEROUS_S` was woken by something else."""
    import eventstore.postgres
    import eventstore.sqlite

    monkeypatch.setattr(eventstore.postgres, "WATCH_INTERVAL", 600.0)
    monkeypatch.setattr(eventstore.sqlite, "WATCH_INTERVAL", 600.0)


async def test_positions_are_gap_free_and_versions_count_per_stream(store: EventStore) -> None:
    assert await store.head() == 0
    first = await store.append([new_event("a", 1), new_event("b", 2), new_event("a", 3)])
    second = await store.append([new_event("b", 4)])
    third = await store.append(varied_events(7))

    recorded = first + second + third
    assert [e.position for e in recorded] == list(range(1, 12))
    assert [(e.stream_id, e.version) for e in first + second] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("b", 2),
    ]
    assert recorded[0].prev_hash == GENESIS_HASH
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(recorded))
    assert len({e.hash for e in recorded}) == len(recorded)
    assert len({e.recorded_at for e in first}) == 1  # one batch, one recording time

    assert await store.head() == 11
    read = [e async for e in store.read_all(batch_size=4)]
    assert read == recorded
    assert [e async for e in store.read_all(3, batch_size=2, until=6)] == recorded[3:6]
    assert await store.read_batch(9, 100) == recorded[9:]
    assert await store.read_batch(11, 100) == []
    assert await store.stream_versions(["a", "b", "lab/qemu/100", "nope"]) == {
        "a": 2,
        "b": 2,
        "lab/qemu/100": 3,
    }
    assert await store.append([]) == []
    assert (await store.verify()).ok


async def test_read_stream_up_to_a_position_or_a_time(store: EventStore) -> None:
    await store.append([new_event("vm", 0), new_event("other", 1)])
    await store.append([new_event("vm", 10, expected=1)])
    await store.append([new_event("vm", 20, expected=2), new_event("other", 21)])

    whole = await store.read_stream("vm")
    assert [(e.version, e.position) for e in whole] == [(1, 1), (2, 3), (3, 4)]
    assert [e.version for e in await store.read_stream("vm", until_position=3)] == [1, 2]
    assert [e.version for e in await store.read_stream("vm", until_position=2)] == [1]
    at = T0 + timedelta(seconds=10)
    assert [e.version for e in await store.read_stream("vm", until_time=at)] == [1, 2]
    before = at - timedelta(microseconds=1)
    assert [e.version for e in await store.read_stream("vm", until_time=before)] == [1]
    both = await store.read_stream("vm", until_position=1, until_time=at)
    assert [e.version for e in both] == [1]
    assert [e.version for e in await store.read_stream("vm", until_version=2)] == [1, 2]
    assert [e.version for e in await store.read_stream("vm", until_version=0)] == []
    assert [e.version for e in await store.read_stream("vm", until_version=-1)] == []
    assert [e.version for e in await store.read_stream("vm", until_version=9)] == [1, 2, 3]
    mixed = await store.read_stream("vm", until_version=3, until_position=3)
    assert [e.version for e in mixed] == [1, 2]
    assert await store.read_stream("missing") == []


async def test_round_trip_keeps_every_field(store: EventStore) -> None:
    appended = await store.append(varied_events(12))
    read = await store.read_batch(0, 100)
    assert read == appended
    for event in read:
        assert event.observed_at.utcoffset() == timedelta(0)
        assert event.recorded_at.utcoffset() == timedelta(0)
    assert {e.actor for e in read if e.actor} == {e.actor for e in appended if e.actor}
    assert read[1].data.decode().startswith('{"name":"vm-ü-1"')


ODD_TEXT = ("tab\there", "new\nline", "cr\rhere", "back\\slash", "\\N", "\\x41", "ü β 🚀", "")


@pytest.mark.parametrize("size", [len(ODD_TEXT), 450], ids=["small", "bulk"])
async def test_text_with_copy_format_specials_round_trips(store: EventStore, size: int) -> None:
    """Tabs, newlines, CRs, backslashes and a literal ``\\N`` in every free-text field come
    back byte for byte, on the small path and on the bulk one (PostgreSQL: COPY's text
    format, sent in slices while the rest of the batch is sealed)."""
    events = []
    for i in range(size):
        odd = ODD_TEXT[i % len(ODD_TEXT)]
        events.append(
            NewEvent(
                stream_id=f"lab/{odd}/{i}",
                type=f"t{odd}",
                data=('{"s":"%s","i":%d}' % (odd.encode("unicode_escape").decode(), i)).encode(),  # noqa: UP031
                observed_at=T0 + timedelta(microseconds=i),
                actor=Actor(user=f"u{odd}@pam", token=odd, upid=None) if i % 2 else None,
                correlation_id=odd if i % 3 else None,
            )
        )
    appended = await store.append(events)
    assert [e.stream_id for e in appended] == [e.stream_id for e in events]
    assert await store.read_batch(0, size + 1) == appended
    assert await store.read_stream(events[1].stream_id) == [appended[1]]
    assert (await store.verify()).ok


async def test_an_append_cancelled_at_any_point_is_all_or_nothing(store: EventStore) -> None:
    """Cancel a 2,000-event append after 0 to 40 ms (before it began, while it waits for the
    lock or the head, or with part of it written), then as soon as the database shows its
    write transaction open. Each time the batch is in the log whole or not at all, and the
    next append follows the head. A cancel counts as landed inside the append only when the
    database showed the append's transaction open just before it: PostgreSQL must then roll
    the batch back at least once (part of its COPY sent; a run with the slices printed showed
    12 of 20 sent at one cancellation), SQLite must finish it (its worker thread cannot be
    interrupted)."""
    head = (await store.append([new_event("before", 0)]))[-1].position
    landed_inside = False
    delays: list[float | None] = [0, 0.001, 0.003, 0.01, 0.02, 0.04, *[None] * 8]
    for round_, delay in enumerate(delays):
        if delay is None and landed_inside:
            break
        batch = [new_event(f"r{round_}/s{i}", i) for i in range(2000)]
        task = asyncio.create_task(store.append(batch))
        if delay is not None:
            await asyncio.sleep(delay)
            started = await writing(store)
        else:  # cancel the moment the database shows the append writing
            started = await when_writing(store, task)
        cancelled = task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # SQLite finishes an append its caller gave up on (its worker thread is not
        # interruptible); the next append queues behind it, so it tells what stayed.
        [after] = await store.append([new_event(f"after/{round_}", 0)])
        whole = after.position == head + 2001
        assert whole or after.position == head + 1, (delay, head, after.position)
        if started and cancelled:
            if store.dialect == "sqlite":
                assert whole, (round_, delay, "SQLite dropped an append it had begun")
                landed_inside = True
            else:
                landed_inside |= not whole  # rolled back mid-way, not cancelled after COMMIT
        versions = await store.stream_versions([f"r{round_}/s0", f"r{round_}/s1999"])
        assert versions == ({f"r{round_}/s0": 1, f"r{round_}/s1999": 1} if whole else {})
        head = after.position
    assert (await store.verify()).ok
    assert landed_inside, "no cancellation landed while the append's transaction was open"


@pytest.mark.parametrize("size", [5, 450], ids=["small", "bulk"])
@pytest.mark.parametrize("bad", ["payload not UTF-8", "naive time"])
async def test_an_event_that_cannot_be_sealed_is_named_and_leaves_nothing(
    store: EventStore, size: int, bad: str
) -> None:
    """An event that cannot be recorded late in a batch (on PostgreSQL's bulk path the slices
    before it were already sent to the server): a clear error naming it, nothing of the batch
    stays, and the store goes on appending."""
    await store.append([new_event("before", 0)])
    batch = [new_event(f"s{i}", i) for i in range(size)]
    k = size - 3
    if bad == "naive time":
        batch[k] = msgspec.structs.replace(batch[k], observed_at=datetime(2026, 1, 1))
    else:
        batch[k] = new_event(f"s{k}", k, data=b'{"bad":"\xff"}')
    with pytest.raises(InvalidEventError, match=f"stream 's{k}' \\(version 1\\)") as raised:
        await store.append(batch)
    assert ("naive" if bad == "naive time" else "UnicodeDecodeError") in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert await store.head() == 1
    assert await store.stream_versions(["s0", f"s{k - 1}", f"s{k}"]) == {}
    batch[k] = new_event(f"s{k}", k)
    appended = await store.append(batch)
    assert [e.position for e in appended] == list(range(2, size + 2))
    assert (await store.verify()).ok


async def test_conflicting_expected_versions_raise_and_write_nothing(store: EventStore) -> None:
    await store.append([new_event("vm", 0, expected=0), new_event("vm", 1, expected=1)])

    with pytest.raises(ConcurrencyError, match="'vm' is at version 2, expected 1"):
        await store.append([new_event("other", 2), new_event("vm", 2, expected=1)])
    with pytest.raises(ConcurrencyError):
        await store.append([new_event("vm", 2, expected=0)])
    with pytest.raises(ConcurrencyError):  # a new stream must be at 0
        await store.append([new_event("new", 2, expected=3)])
    # Two events of one batch on one stream: the second expects the first's version.
    with pytest.raises(ConcurrencyError):
        await store.append([new_event("vm", 3, expected=2), new_event("vm", 4, expected=2)])

    assert await store.head() == 2
    assert await store.stream_versions(["vm", "other", "new"]) == {"vm": 2}
    ok = await store.append([new_event("vm", 3, expected=2), new_event("vm", 4, expected=3)])
    assert [(e.position, e.version) for e in ok] == [(3, 3), (4, 4)]


async def test_racing_appenders_with_one_expected_version_one_wins(
    store: EventStore, database_url: str
) -> None:
    other = await open_store(database_url)
    try:
        results = await asyncio.gather(
            *(
                s.append([new_event("vm", i, expected=0)])
                for i, s in enumerate([store, other, store, other])
            ),
            return_exceptions=True,
        )
    finally:
        await other.close()
    winners = [r for r in results if isinstance(r, list)]
    losers = [r for r in results if isinstance(r, ConcurrencyError)]
    assert len(winners) == 1, results
    assert len(losers) == 3, results
    assert await store.head() == 1


async def test_unique_stream_version_backstop_is_a_concurrency_error(store: EventStore) -> None:
    """A row that slips past the version check still meets the database's unique key."""
    [event] = await store.append([new_event("vm", 0)])
    with pytest.raises(ConcurrencyError) as caught:
        await raw_execute(
            store,
            "INSERT INTO events (position, stream_id, stream_key, version, type, "
            "schema_version, observed_at, recorded_at, data, prev_hash, hash) "
            "SELECT position + 1, stream_id, stream_key, version, type, schema_version, "
            "observed_at, recorded_at, data, hash, hash FROM events WHERE position = 1",
        )
    assert caught.value.__cause__ is not None  # the driver's error, chained
    assert await store.head() == 1
    assert await store.read_batch(0, 10) == [event]


async def test_a_batch_failing_halfway_leaves_nothing(store: EventStore) -> None:
    """The database itself refuses the 3rd row of 5: the two before it must not stay."""
    await store.append([new_event("before", 0)])
    if store.dialect == "sqlite":
        trigger = (
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.stream_id = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )
    else:
        await raw_execute(
            store,
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.stream_id = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; "
            "RETURN NEW; END $$",
        )
        trigger = (
            "CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()"
        )
    await raw_execute(store, trigger)

    batch = [new_event("a", 1), new_event("b", 2), new_event("poison", 3), new_event("c", 4)]
    for size in (4, 300):  # small batches and the bulk (COPY) path
        padded = batch + [new_event(f"pad{i}", 5) for i in range(size - len(batch))]
        with pytest.raises(EventStoreError, match="poisoned row"):
            await store.append(padded)
        assert await store.head() == 1
        assert await store.stream_versions(["a", "b", "c", "poison", "pad0"]) == {}

    # The failure left no gap: the next append takes position 2.
    [after] = await store.append([new_event("a", 6)])
    assert (after.position, after.version) == (2, 1)
    assert (await store.verify()).ok
    # Nor a stream: the failed batch's new streams were rolled back with it, and "a" got a
    # key of its own now (a key remembered from the failed batch would point nowhere).
    assert await raw_fetch(
        store,
        "SELECT e.stream_id FROM events e JOIN streams s "
        "ON s.stream_key = e.stream_key AND s.stream_id = e.stream_id ORDER BY e.position",
    ) == [("before",), ("a",)]
    assert sorted(await raw_fetch(store, "SELECT stream_id FROM streams")) == [("a",), ("before",)]


async def test_append_only_update_and_delete_are_refused_by_the_database(
    store: EventStore,
) -> None:
    await store.append([new_event("vm", 0), new_event("vm", 1)])
    before = await store.read_batch(0, 10)
    statements = [
        "UPDATE events SET type = 'removed' WHERE position = 1",
        "UPDATE events SET data = data",
        "DELETE FROM events WHERE position = 2",
        "DELETE FROM events",
        "UPDATE streams SET stream_id = 'other'",
        "UPDATE streams SET stream_key = stream_key + 1",
        "DELETE FROM streams",
    ]
    if store.dialect == "postgresql":
        statements += ["TRUNCATE events", "TRUNCATE streams"]
    streams_before = await raw_fetch(store, "SELECT stream_key, stream_id FROM streams")
    for sql in statements:
        with pytest.raises(EventStoreError, match="append-only") as caught:
            await raw_execute(store, sql)
        assert type(caught.value).__name__ == "AppendOnlyViolationError", sql
    assert await store.read_batch(0, 10) == before
    assert await raw_fetch(store, "SELECT stream_key, stream_id FROM streams") == streams_before


async def test_settings_are_stored_once_for_every_store(
    store: EventStore, database_url: str
) -> None:
    assert await store.get_setting("key") is None
    other = await open_store(database_url)
    try:
        values = await asyncio.gather(
            store.ensure_setting("key", lambda: "first"),
            other.ensure_setting("key", lambda: "second"),
        )
        assert values[0] == values[1]
        assert await other.get_setting("key") == values[0]
        assert await store.ensure_setting("key", lambda: "third") == values[0]
    finally:
        await other.close()
    rows = await raw_fetch(store, "SELECT name, value FROM settings")
    assert rows == [("key", values[0])]


async def test_wait_for_events_times_out_with_the_head(store: EventStore) -> None:
    await store.append([new_event("vm", 0)])
    assert await store.wait_for_events(0, 5) == 1  # already past: no waiting
    started = time.monotonic()
    assert await store.wait_for_events(1, 0.3) == 1
    assert 0.25 <= time.monotonic() - started < 2


async def test_wait_for_events_wakes_for_an_append_of_this_store(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-process signal wakes the waiter, not a poll: with the periodic check ten
    minutes apart, nothing else could wake it within the bound."""
    slow_periodic_check(monkeypatch)
    waiter = asyncio.create_task(store.wait_for_events(0, 3600))
    await until_waiting_for_events(waiter)
    await store.append([new_event("vm", 0)])
    assert await asyncio.wait_for(waiter, GENEROUS_S) == 1


async def test_wait_for_events_wakes_for_an_append_whose_caller_gave_up(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: an append cancelled while its worker thread writes still commits (the thread
    cannot be interrupted); waiters in the process hear of it when it commits, not at their
    next check of the file (ten minutes apart here, so only the signal can wake them)."""
    slow_periodic_check(monkeypatch)
    store = await open_store(f"sqlite:///{tmp_path}/gave-up.db")
    try:
        await store.migrate()
        committed = False
        for round_ in range(5):
            before = await store.head()
            waiter = asyncio.create_task(store.wait_for_events(before, 3600))
            await until_waiting_for_events(waiter)
            append = asyncio.create_task(
                store.append([new_event(f"r{round_}/s{i}", i) for i in range(2000)])
            )
            # Cancel the moment the database shows the append's transaction open.
            await when_writing(store, append)
            if not append.cancel():  # finished before the cancel: nothing to test this round
                await append
                await waiter
                continue
            with contextlib.suppress(asyncio.CancelledError):
                await append
            assert await asyncio.wait_for(waiter, GENEROUS_S) == before + 2000
            committed = True
            break
        assert committed, "no append was cancelled with its transaction open"
    finally:
        await store.close()


async def test_wait_for_events_wakes_for_another_store_object(
    store: EventStore, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's append: SQLite's periodic check (about once a second) or NOTIFY
    (PostgreSQL, with the periodic head check ten minutes apart so only NOTIFY can wake it
    within the bound)."""
    if store.dialect == "postgresql":
        slow_periodic_check(monkeypatch)
    writer = await open_store(database_url)
    try:
        waiter = asyncio.create_task(store.wait_for_events(0, 3600))
        await until_waiting_for_events(waiter)
        await writer.append([new_event("vm", 0), new_event("vm", 1)])
        assert await asyncio.wait_for(waiter, GENEROUS_S) == 2
    finally:
        await writer.close()


async def test_named_lock_excludes_across_store_objects(
    store: EventStore, database_url: str
) -> None:
    other = await open_store(database_url)
    try:
        async with store.named_lock("poller:lab") as held:
            assert held is True
            async with other.named_lock("poller:lab", wait=False) as held_other:
                assert held_other is False
            async with store.named_lock("poller:lab", wait=False) as held_again:
                assert held_again is False  # not re-entrant either
            async with other.named_lock("poller:other", wait=False) as held_other_name:
                assert held_other_name is True

        async with other.named_lock("poller:lab", wait=False) as held_other:
            assert held_other is True

        # With wait=True the second holder waits until the first lets go.
        order: list[str] = []

        async def second() -> None:
            async with other.named_lock("runner") as got:
                assert got is True
                order.append("second got it")

        async with store.named_lock("runner"):
            task = asyncio.create_task(second())

            # the second taker really asks for the lock, and waits on it (seen from outside)
            async def second_waits() -> bool:
                return await lock_waiters(store, "runner") == 1

            await until(second_waits, what="a waiter on the lock 'runner'")
            assert not task.done()
            order.append("first releases")
        await asyncio.wait_for(task, 10)
        assert order == ["first releases", "second got it"]
    finally:
        await other.close()


async def test_cancelled_lock_waiters_leave_nothing_blocked(
    store: EventStore, database_url: str
) -> None:
    # Waiters that block in an uncancellable call (a worker thread in flock, say) would stay
    # blocked after their cancellation and use up the default thread pool, stalling every
    # later asyncio.to_thread of the process; and the lock must still go to the next taker.
    other = await open_store(database_url)
    try:
        async with store.named_lock("poll:lab"):

            async def wait_for_it() -> None:
                async with other.named_lock("poll:lab"):
                    pytest.fail("a cancelled waiter got the lock")

            # One after another, as a poll whose caller gave up would: each one reaches the
            # file lock (the in-process lock queues simultaneous ones before it).
            async def one_waits() -> bool:
                return await lock_waiters(store, "poll:lab") == 1

            for _ in range(12):
                waiter = asyncio.create_task(wait_for_it())
                await until(one_waits, what="the waiter at the lock")
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
            # The lock is still held here: nothing may be left waiting on it in a thread.
            assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 2) == 42
        async with other.named_lock("poll:lab", wait=False) as held:
            assert held is True
    finally:
        await other.close()


@pytest.mark.postgres
async def test_unreachable_postgres_names_the_url_with_the_password_masked() -> None:
    url = "postgresql://pvetrail:s3cret-pw@127.0.0.1:1/pvetrail"
    with pytest.raises(DatabaseUnavailableError) as caught:
        await open_store(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql://pvetrail:***@127.0.0.1:1/pvetrail" in message
    assert caught.value.__cause__ is not None


async def test_sqlite_in_a_missing_folder_is_unavailable(tmp_path: object) -> None:
    with pytest.raises(DatabaseUnavailableError, match="does not exist"):
        await open_store(f"sqlite:///{tmp_path}/no/such/folder/pvetrail.db")


async def test_a_store_that_is_not_migrated_says_so(database_url: str) -> None:
    fresh = await open_store(database_url)
    try:
        with pytest.raises(EventStoreError, match=r"pvetrail migrate"):
            await fresh.head()
    finally:
        await fresh.close()


@pytest.mark.parametrize("catch_up_limit", [10_000, 1])
async def test_versions_stay_exact_when_store_objects_take_turns(
    store: EventStore, database_url: str, catch_up_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each store remembers stream versions between its appends; another's appends must show.

    With a catch-up limit of 1 the remembered versions are dropped and read again instead.
    """
    from eventstore.store import VersionCache

    monkeypatch.setattr(VersionCache, "CATCH_UP_LIMIT", catch_up_limit)
    other = await open_store(database_url)
    try:
        await store.append([new_event("vm", 0, expected=0)])
        await other.append([new_event("vm", 1, expected=1), new_event("ct", 1)])
        await other.append([new_event("ct", 2, expected=1)])
        with pytest.raises(ConcurrencyError):
            await store.append([new_event("vm", 2, expected=1)])  # stale: vm is at 2
        [vm3, ct3] = await store.append([new_event("vm", 2, expected=2), new_event("ct", 3)])
        assert (vm3.version, ct3.version) == (3, 3)
        [vm4] = await other.append([new_event("vm", 4)])
        assert vm4.version == 4
        [vm5] = await store.append([new_event("vm", 5, expected=4)])
        assert vm5.version == 5
    finally:
        await other.close()
    assert await store.stream_versions(["vm", "ct"]) == {"vm": 5, "ct": 3}
    assert (await store.verify()).ok


async def test_a_full_version_cache_starts_over_without_losing_a_stream(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the streams remembered between appends would pass the cache's limit, it starts
    over: a batch mixing remembered and new streams must still append, each stream keeping
    its one key and its versions."""
    from eventstore.store import VersionCache

    monkeypatch.setattr(VersionCache, "SIZE_LIMIT", 3)
    await store.append([new_event("a", 0), new_event("b", 1)])
    appended = await store.append(
        [new_event("a", 2, expected=1), new_event("c", 3), new_event("d", 4)]
    )
    assert [(e.stream_id, e.version) for e in appended] == [("a", 2), ("c", 1), ("d", 1)]
    [b2] = await store.append([new_event("b", 5, expected=1)])
    assert b2.version == 2
    assert await store.stream_versions(["a", "b", "c", "d"]) == {"a": 2, "b": 2, "c": 1, "d": 1}
    assert [len(await store.read_stream(s)) for s in "abcd"] == [2, 2, 1, 1]
    assert (await store.verify()).ok


async def test_stream_keys_stay_one_per_stream_across_store_objects(
    store: EventStore, database_url: str
) -> None:
    """The log's stream index is keyed by ``streams.stream_key``: every event must carry its
    own stream's key, whichever store object created the stream, and a failed append must
    leave no stream behind (nor a key that a later stream would then clash with)."""
    other = await open_store(database_url)
    try:
        await store.append([new_event("a", 0), new_event("b", 1), new_event("a", 2)])
        await other.append([new_event("c", 3), new_event("a", 4)])
        with pytest.raises(ConcurrencyError):
            await store.append([new_event("d", 5), new_event("a", 6, expected=0)])
        await store.append([new_event("e", 7), new_event("c", 8)])
        await other.append([new_event("d", 9), new_event("b", 10)])
    finally:
        await other.close()
    streams = await raw_fetch(store, "SELECT stream_id, stream_key FROM streams")
    assert sorted(s for s, _ in streams) == ["a", "b", "c", "d", "e"]
    keys = dict(streams)
    assert len(set(keys.values())) == 5
    rows = await raw_fetch(store, "SELECT stream_id, stream_key FROM events ORDER BY position")
    assert len(rows) == 9
    assert all(keys[stream_id] == key for stream_id, key in rows)
    assert [e.version for e in await store.read_stream("a")] == [1, 2, 3]
    assert [e.version for e in await store.read_stream("d")] == [1]
    assert await store.read_stream("nope") == []
    assert await store.stream_versions(["a", "b", "c", "d", "e", "f"]) == {
        "a": 3,
        "b": 2,
        "c": 2,
        "d": 1,
        "e": 1,
    }


@pytest.mark.postgres
async def test_postgres_short_reads_side_by_side_and_after_a_cancelled_one(
    postgres_url: str,
) -> None:
    """Short reads (the head, one stream) take the store's own connection when it is free and
    a pooled one when it is busy; a read cancelled mid-statement must not leave that
    connection half-used for the next one."""
    import asyncpg

    from eventstore.postgres import split_url

    store = await open_store(postgres_url)
    dsn, schema = split_url(postgres_url)
    locker = await asyncpg.connect(dsn)
    try:
        await store.migrate()
        await store.append([new_event("vm", i) for i in range(3)])
        reads = await asyncio.gather(*(store.read_stream("vm") for _ in range(8)))
        assert [len(r) for r in reads] == [3] * 8
        assert await asyncio.gather(*(store.head() for _ in range(8))) == [3] * 8

        # Hold the log locked so the next head() blocks inside its statement, then cancel it.
        locker_tx = locker.transaction()
        await locker_tx.start()
        await locker.execute(f"LOCK TABLE {schema}.events IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.head(), 0.3)
        await locker_tx.rollback()

        assert await asyncio.wait_for(store.head(), 5) == 3
        assert [e.version for e in await asyncio.wait_for(store.read_stream("vm"), 5)] == [1, 2, 3]
        await store.append([new_event("vm", 4)])
        assert await asyncio.wait_for(store.head(), 5) == 4

        # The server ends the store's own connection (a restart, an idle timeout): the next
        # read finds it gone and runs again on a new one.
        pids = await locker.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE '%MAX(position)%'"
        )
        assert pids, "the store's own connection ran the last head()"
        for (pid,) in pids:
            await locker.execute("SELECT pg_terminate_backend($1)", pid)
        assert await asyncio.wait_for(store.head(), 5) == 4
        assert len(await asyncio.wait_for(store.read_stream("vm"), 5)) == 4
    finally:
        await locker.close()
        await store.close()


@pytest.mark.postgres
async def test_postgres_append_whose_connection_dies_mid_copy_leaves_nothing(
    postgres_url: str,
) -> None:
    """The server ends the appending connection while its COPY is streaming (a restart, a
    network cut): the append fails with the store's own error, nothing of the batch stays,
    and the next append, on a fresh connection, follows the head."""
    import asyncpg

    from eventstore.postgres import split_url

    store = await open_store(postgres_url)
    dsn, _ = split_url(postgres_url)
    append_key = getattr(store, "_append_key") & (2**64 - 1)  # noqa: B009
    killer = await asyncpg.connect(dsn)
    try:
        await store.migrate()
        await store.append([new_event("before", 0)])
        batch = [new_event(f"s{i}", i) for i in range(20_000)]
        append = asyncio.create_task(store.append(batch))
        killed: list[int] = []
        deadline = time.monotonic() + 10
        while not killed and not append.done() and time.monotonic() < deadline:
            # This store's COPY only (the session holding its append lock): other suites'
            # appends on the same server are none of this test's business.
            for (pid,) in await killer.fetch(
                "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                "WHERE a.datname = current_database() AND a.query LIKE 'COPY %events%' "
                "AND a.state = 'active' AND l.locktype = 'advisory' AND l.granted "
                "AND l.classid::bigint = $1 AND l.objid::bigint = $2",
                append_key >> 32,
                append_key & 0xFFFFFFFF,
            ):
                await killer.execute("SELECT pg_terminate_backend($1)", pid)
                killed.append(pid)
        assert killed, "the append's COPY was never seen running"
        with pytest.raises(DatabaseUnavailableError, match="append: lost the connection"):
            await append
        assert await store.head() == 1
        assert await store.stream_versions(["s0", "s19999"]) == {}
        [after] = await store.append([new_event("after", 1)])
        assert after.position == 2
        assert (await store.verify()).ok
    finally:
        await killer.close()
        await store.close()


@pytest.mark.postgres
async def test_wait_for_events_survives_a_lost_listen_connection(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server drops the LISTEN session while a waiter waits: the periodic head check
    still sees an append whose NOTIFY reached no one, and reconnects the listener, so the
    next waiter is woken by NOTIFY again."""
    reader = await open_store(postgres_url)
    writer = await open_store(postgres_url)
    try:
        await reader.migrate()
        channel = getattr(reader, "channel")  # noqa: B009 (a PostgreSQL store's attribute)

        async def listening() -> int:
            [(count,)] = await raw_fetch(
                writer,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query = ?",
                f'LISTEN "{channel}"',
            )
            return int(count)

        async def listener_gone() -> bool:
            return await listening() == 0

        async def listener_back() -> bool:
            return await listening() == 1

        # Until one round's append commits with no listener connected (the waiter's own
        # periodic check may reconnect it first, about once a second: then try again).
        seen_without_notify = False
        for round_ in range(5):
            head = await reader.head()
            waiter = asyncio.create_task(reader.wait_for_events(head, 3600))
            await until_waiting_for_events(waiter)
            assert await listening() == 1
            killed = await raw_fetch(
                writer,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query = ?",
                f'LISTEN "{channel}"',
            )
            assert killed == [(True,)]  # exactly this store's listener, no one else's
            await until(listener_gone, what="the listener gone")
            await writer.append([new_event(f"vm{round_}", 0)])
            without = await listening() == 0  # nothing listened when the NOTIFY was sent
            assert await asyncio.wait_for(waiter, GENEROUS_S) == head + 1
            if without:
                seen_without_notify = True
                break
        assert seen_without_notify, "the listener was back before every round's append"

        # And it listens again afterwards; with the periodic check ten minutes apart, only
        # NOTIFY can wake the next waiter within the bound.
        await until(listener_back, what="the listener back")
        slow_periodic_check(monkeypatch)
        head = await reader.head()
        waiter = asyncio.create_task(reader.wait_for_events(head, 3600))
        await until_waiting_for_events(waiter)
        await writer.append([new_event("vm", 1)])
        assert await asyncio.wait_for(waiter, GENEROUS_S) == head + 1
    finally:
        await reader.close()
        await writer.close()


async def test_a_long_stream_reads_whole(store: EventStore) -> None:
    """Longer than what SQLite reads on the loop's own thread: the rest is not cut off."""
    await store.append([new_event("long", n) for n in range(300)] + [new_event("short", 0)])
    events = await store.read_stream("long")
    assert [e.version for e in events] == list(range(1, 301))
    assert len(await store.read_stream("long", until_position=257)) == 257
    assert len(await store.read_stream("long", until_position=256)) == 256
    assert [e.stream_id for e in await store.read_stream("short")] == ["short"]


async def test_sqlite_small_reads_are_whole_on_either_thread(tmp_path: object) -> None:
    """A short read runs on the loop's thread; a longer one falls back to a reader, whole."""
    store = await open_store(f"sqlite:///{tmp_path}/small.db")
    try:
        await store.migrate()
        await store.append([new_event("long", n) for n in range(300)])
        assert isinstance(store, SQLiteEventStore)
        sql = "SELECT version FROM events WHERE stream_id = ? AND version <= ? ORDER BY version"
        for count in (0, 1, 256, 257, 300):
            rows = await store.read_small(sql, ("long", count))
            assert [r[0] for r in rows] == list(range(1, count + 1))
        with pytest.raises(EventStoreError):
            await store.read_small("SELECT nothing FROM no_such_table")
    finally:
        await store.close()
