"""``GET /integrity``'s walk: shared by concurrent requests, kept until the head moves or a
minute passes, run on its own connections off the event loop, and still catching tamper."""

from __future__ import annotations

import asyncio

from api.integrity import IntegrityCheck
from api.services import SERVICES
from eventstore import EventStore
from tests.api.conftest import Server, append_events
from tests.eventstore.store_helpers import (
    drop_append_only_triggers,
    new_event,
    raw_execute,
    varied_events,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_requests_share_one_walk_and_its_answer_is_kept(
    store: EventStore,
) -> None:
    await store.append(varied_events(50))
    clock = Clock()
    check = IntegrityCheck(store, max_age_s=60, clock=clock)
    answers = await asyncio.gather(*(check.check() for _ in range(8)))
    assert check.walks == 1
    assert all(a is answers[0] for a in answers)
    first = answers[0]
    assert first.result.ok
    assert (first.result.checked, first.head) == (50, 50)

    clock.now += 59
    assert await check.check() is first  # same head, younger than a minute: kept
    assert check.walks == 1

    clock.now += 2  # older than a minute: walked again
    again = await check.check()
    assert check.walks == 2
    assert again is not first
    assert again.checked_at >= first.checked_at

    await store.append([new_event("lab/qemu/100", 99)])  # the head moved: walked again
    moved = await check.check()
    assert check.walks == 3
    assert (moved.result.checked, moved.head) == (51, 51)


async def test_a_walk_still_catches_tamper_and_a_cancelled_request_does_not_stop_it(
    store: EventStore,
) -> None:
    await store.append(varied_events(30))
    check = IntegrityCheck(store)
    assert (await check.check()).result.ok
    await drop_append_only_triggers(store)
    await raw_execute(store, "UPDATE events SET data = ? WHERE position = 7", b'{"n":1}')
    await store.append([new_event("lab/qemu/100", 99)])  # move the head: no kept answer

    impatient = asyncio.ensure_future(check.check())
    await asyncio.sleep(0)
    impatient.cancel()
    found = await check.check()  # joins the walk the cancelled request started
    assert check.walks == 2
    assert not found.result.ok
    assert found.result.first_bad_position == 7


async def test_the_route_reports_when_it_walked_and_shares_walks(server: Server) -> None:
    await append_events(server.store, 3)
    bodies = await asyncio.gather(*(server.get("/api/v1/integrity") for _ in range(4)))
    assert {status for status, _, _ in bodies} == {200}
    answers = [body for _, body, _ in bodies]
    assert answers[0]["ok"] is True
    assert (answers[0]["checked"], answers[0]["head"]) == (3, 3)
    assert answers[0]["checked_at"].endswith("Z")
    assert all(a == answers[0] for a in answers)  # one walk, one checked_at
    assert server.app[SERVICES].integrity.walks == 1
    await append_events(server.store, 1)
    status, moved, _ = await server.get("/api/v1/integrity")
    assert (status, moved["checked"]) == (200, 4)
    assert moved["checked_at"] >= answers[0]["checked_at"]
