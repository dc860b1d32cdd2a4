"""A named lock whose database session ends while it is held: the holder hears of it.

A process that holds a PostgreSQL advisory lock for its life (a cluster's collector lease, the
projection runner's lock) keeps it only as long as the lock's session: when the server ends
that session, or the network to it is cut, another process may take the lock at once. The
holder must stop the guarded work then, or two processes do it (two pollers of one cluster).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from eventstore import EventStore, LockLostError, open_store
from eventstore.postgres import PostgresEventStore, lock_key
from tests.conftest import POSTGRES_URL
from tests.eventstore.store_helpers import PgRelay

# Every test here is about PostgreSQL sessions (an SQLite file lock lasts as long as its
# process): the shared ``store`` fixture, on PostgreSQL only.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


async def _lock_pid(store: EventStore, name: str) -> int:
    """The server pid of the session holding ``store``'s named lock ``name``."""
    assert isinstance(store, PostgresEventStore)
    unsigned = lock_key("pvetrail.named", store.schema or "public", name) & (2**64 - 1)
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        pid = await conn.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
            unsigned >> 32,
            unsigned & 0xFFFFFFFF,
        )
    finally:
        await conn.close()
    assert pid is not None, f"no session holds the lock {name!r}"
    return int(pid)


async def _terminate(pid: int) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_a_terminated_lock_session_cancels_the_guarded_work(
    store: EventStore, postgres_url: str
) -> None:
    other = await open_store(postgres_url)
    try:
        inside = asyncio.Event()
        finished_normally = False

        async def guarded() -> None:
            nonlocal finished_normally
            async with store.guarded_lock("collector:lab") as held:
                assert held
                inside.set()
                await asyncio.sleep(3600)
                finished_normally = True

        task = asyncio.create_task(guarded())
        await asyncio.wait_for(inside.wait(), 10)
        async with other.named_lock("collector:lab", wait=False) as held_elsewhere:
            assert not held_elsewhere  # held, so nobody else gets it

        await _terminate(await _lock_pid(store, "collector:lab"))
        with pytest.raises(LockLostError, match="collector:lab"):
            await asyncio.wait_for(task, 10)
        assert not finished_normally
        # The lock went with the session: another process takes it now.
        async with other.named_lock("collector:lab", wait=False) as held_elsewhere:
            assert held_elsewhere
    finally:
        await other.close()


async def test_a_guarded_lock_released_normally_raises_nothing_and_is_free_again(
    store: EventStore, postgres_url: str
) -> None:
    async with store.guarded_lock("runner") as held:
        assert held
    async with store.guarded_lock("runner", wait=False) as held:
        assert held
    # Cancelling the holder from outside, inside the block, is a plain cancellation, not a
    # lost lock; and the lock goes with it.
    inside = asyncio.Event()

    async def hold_forever() -> None:
        async with store.guarded_lock("runner") as held:
            assert held
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold_forever())
    await asyncio.wait_for(inside.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.named_lock("runner", wait=False) as held:
        assert held


async def test_a_lock_session_that_stops_answering_is_given_up_by_the_probe(
    store: EventStore, postgres_url: str
) -> None:
    direct = store
    proxy = PgRelay()
    try:
        relayed = await proxy.start(postgres_url)
        relayed_store = await open_store(relayed)
        assert isinstance(relayed_store, PostgresEventStore)
        relayed_store.lock_probe_s = 0.2
        try:
            inside = asyncio.Event()

            async def guarded() -> None:
                async with relayed_store.guarded_lock("collector:lab"):
                    inside.set()
                    await asyncio.sleep(3600)

            task = asyncio.create_task(guarded())
            await asyncio.wait_for(inside.wait(), 10)
            proxy.frozen = True  # the network is cut: no answer, no close
            with pytest.raises(LockLostError):
                await asyncio.wait_for(task, 10)
            # The holder aborted its side; the relay closes the server's side with it, the
            # server ends the session and the lock is free for another process.
            async with asyncio.timeout(10), direct.named_lock("collector:lab") as held:
                assert held
        finally:
            proxy.frozen = False  # the store's other connections close normally
            with contextlib.suppress(Exception):
                await relayed_store.close()
    finally:
        await proxy.close()
