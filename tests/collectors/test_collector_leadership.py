"""One collector per cluster across processes: the lease, the stand-by, the take-over, and the
resyncs a leader left unfinished.

Each "process" is a collector service on a store of its own over the test's database (its own
connections and, on SQLite, its own lock files' handles), as two ``serve`` processes have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from collectors import leadership, resyncs
from collectors.service import CollectorService
from eventstore import EventStore, open_store
from tests.api.api_helpers import wait_for
from tests.collectors.conftest import CollectorFactory

FAST_S = 1


@pytest.fixture
async def other_store(database_url: str, store: EventStore) -> AsyncIterator[EventStore]:
    """A second store over the test's database (``store`` migrated it)."""
    opened = await open_store(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def _true(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


def _leading(service: CollectorService) -> Callable[[], Awaitable[bool]]:
    return _true(lambda: service.health()["lab"].leader)


async def test_one_leads_the_other_stands_by_and_takes_over_when_it_stops(
    store: EventStore, other_store: EventStore, make_collector: CollectorFactory
) -> None:
    first = make_collector(fast_interval_s=FAST_S, deep_interval_s=300)
    second = make_collector(other_store, fast_interval_s=FAST_S, deep_interval_s=300)
    await first.start()
    await wait_for(_leading(first), "the first service to take the lease")
    await second.start()
    await wait_for(
        _true(lambda: second.health()["lab"].state == "standby"), "the second to stand by"
    )
    await wait_for(
        _true(lambda: first.health()["lab"].polls_total.get("fast", 0) >= 2), "two fast polls"
    )
    assert second.health()["lab"].polls_total == {}
    assert not second.health()["lab"].leader
    # `pvetrail sync` beside the leader: it takes no lease, and polls once.
    result = await second.sync("lab")
    assert result.ok
    assert second.health()["lab"].polls_total == {"fast": 1}

    await first.stop()
    stopped = time.monotonic()
    await wait_for(
        _true(lambda: second.health()["lab"].polls_total.get("fast", 0) >= 2),
        "the take-over's poll",
        interval=0.01,
    )
    assert time.monotonic() - stopped < 2 * FAST_S
    assert second.health()["lab"].leader
    assert second.health()["lab"].state == "ok"


async def test_a_resync_left_running_goes_back_to_the_queue_and_the_next_leader_runs_it(
    store: EventStore, make_collector: CollectorFactory
) -> None:
    # A leader claimed two resyncs and died; a follow-up of one of them is queued already.
    interrupted = await resyncs.enqueue(store, resyncs.Scope(cluster="lab", vmid=101), "ops")
    duplicated = await resyncs.enqueue(store, resyncs.Scope(cluster="lab", vmid=200), "ops")
    claimed = [await resyncs.claim(store, "lab"), await resyncs.claim(store, "lab")]
    assert [c.id for c in claimed if c is not None] == [interrupted, duplicated]
    follow_up = await resyncs.enqueue(store, resyncs.Scope(cluster="lab", vmid=200), "ops")
    assert follow_up != duplicated

    service = make_collector(fast_interval_s=3600, deep_interval_s=3600)
    await service.start()

    async def finished(resync_id: str) -> resyncs.Resync | None:
        found = await resyncs.get(store, resync_id)
        assert found is not None
        return found if found.status in ("done", "failed") else None

    again = await wait_for(lambda: finished(interrupted), "the interrupted resync to run again")
    assert again.status == "done"
    follow = await wait_for(lambda: finished(follow_up), "the follow-up to run")
    assert follow.status == "done"
    superseded = await resyncs.get(store, duplicated)
    assert superseded is not None
    assert superseded.status == "failed"
    assert superseded.error is not None
    assert "later resync of the same scope" in superseded.error
    assert service.health()["lab"].polls_total.get("targeted") == 2


async def test_a_leader_that_fails_logs_it_and_leads_again(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(leadership, "RETRY_S", 0.01)
    led: list[int] = []
    stood_by: list[int] = []
    done = asyncio.Event()

    async def lead() -> None:
        led.append(1)
        if len(led) == 1:
            raise RuntimeError("a bug in the collector")
        done.set()

    await asyncio.wait_for(
        leadership.hold(
            store,
            "lab",
            lead=lead,
            stand_by=lambda: stood_by.append(1),
            stopping=done.is_set,
        ),
        timeout=10,
    )
    assert len(led) == 2
    assert stood_by == [1]
    assert "a bug in the collector" in caplog.text


@pytest.mark.postgres
async def test_a_leader_whose_lease_session_ends_stops_leading_and_stands_by(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server ends the leader's lease session while its process lives: it stops polling
    at once, and the process that takes the lease is the only one leading."""
    from tests.eventstore.test_store_locks import _lock_pid, _terminate

    stores = [await open_store(postgres_url) for _ in range(2)]
    await stores[0].migrate()
    leading: list[int] = []
    stood_by: list[int] = []
    stop = asyncio.Event()

    def lead_as(who: int) -> Callable[[], Awaitable[None]]:
        async def lead() -> None:
            leading.append(who)
            try:
                await stop.wait()
            finally:
                leading.remove(who)

        return lead

    holders = [
        asyncio.create_task(
            leadership.hold(
                s,
                "lab",
                lead=lead_as(i),
                stand_by=lambda i=i: stood_by.append(i),
                stopping=stop.is_set,
            )
        )
        for i, s in enumerate(stores)
    ]
    try:
        await wait_for(_true(lambda: len(leading) == 1 and len(stood_by) == 1), "one leader")
        first = leading[0]
        await _terminate(await _lock_pid(stores[first], leadership.lease_name("lab")))
        await wait_for(_true(lambda: leading == [1 - first]), "the other to take over")
        assert stood_by.count(first) == 1  # the old leader stands by again
        assert "was lost while held" in caplog.text
        # It stays standing by: never two leaders.
        await asyncio.sleep(0.3)
        assert leading == [1 - first]
    finally:
        stop.set()
        for s in stores:
            await s.close()
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
