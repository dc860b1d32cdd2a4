"""Cursors carry their whole query: paging through every list with every filter and window,
with appends between pages, gives one unpaged answer at the first page's position; a cursor
passed back alone continues the same query, from any process and after a restart; repeated
parameters must equal the cursor's; an edited cursor is a 400, never another answer."""

from __future__ import annotations

import base64
import itertools
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from collectors.events import ConfigChanged, Discovered, Renamed
from eventstore import EventStore, open_store
from projections.errors import InvalidParameterError
from projections.queries import changes, history, inventory
from projections.runner import ProjectionRunner
from tests.projections.projection_helpers import at, change, guest_state, new, random_events

_fresh = itertools.count(1)


async def _history_log(store: EventStore) -> None:
    await store.append(random_events(random.Random(7), 400))
    await ProjectionRunner(store).catch_up()


async def _append_between_pages(store: EventStore) -> None:
    """New guests, and a change to one of every kind of list's resources, after the pages
    already served (they must not show in the listing that began before them)."""
    n = next(_fresh)
    rid = f"lab/qemu/{9000 + n}"
    await store.append(
        [
            new(rid, Discovered(state=guest_state(rid, name=f"late-{n}", tags=["prod"])), 900 + n),
            new(
                rid,
                ConfigChanged(changes=change("config.memory", None, 512 * n), digest=f"z{n}"),
                901 + n,
            ),
        ]
    )
    await ProjectionRunner(store).catch_up()


async def _pages(
    store: EventStore, first: Callable[..., Awaitable[Any]], **params: Any
) -> tuple[list[Any], Any]:
    page = await first(store, limit=2, **params)
    items = list(page.items)
    pages = 1
    while page.next_cursor is not None:
        await _append_between_pages(store)
        page = await first(store, limit=1 if pages % 2 else 3, cursor=page.next_cursor)
        items += page.items
        pages += 1
    return items, pages


INVENTORY_QUERIES = [
    {},
    {"type": "qemu"},
    {"node": "pve1"},
    {"status": "running"},
    {"tag": "prod"},
    {"q": "vm-1"},
    {"type": "lxc", "status": "stopped"},
    {"at": at(60)},
    {"at": at(150), "type": "qemu", "node": "pve2"},
    {"position": 120},
    {"position": 200, "q": "1"},
]


@pytest.mark.parametrize("query", INVENTORY_QUERIES, ids=lambda q: ",".join(q) or "all")
async def test_inventory_pages_concatenate_to_the_first_pages_answer(
    store: EventStore, query: dict[str, Any]
) -> None:
    await _history_log(store)
    whole = await inventory(store, limit=1000, **query)
    items, pages = await _pages(store, inventory, **query)
    assert [r.id for r in items] == [r.id for r in whole.items]
    assert items == whole.items
    assert pages > 1 or len(whole.items) <= 2


@pytest.mark.parametrize(
    "window",
    [{}, {"since": at(30)}, {"until": at(200)}, {"since": at(20), "until": at(300)}],
    ids=lambda w: ",".join(w) or "all",
)
async def test_history_pages_do_not_pick_up_later_events(
    store: EventStore, window: dict[str, Any]
) -> None:
    await _history_log(store)
    counts = Counter([e.stream_id async for e in store.read_all()])
    rid = max(counts, key=lambda stream: (counts[stream], stream))
    whole = await history(store, rid, limit=1000, **window)
    page = await history(store, rid, limit=2, **window)
    items = list(page.items)
    while page.next_cursor is not None:
        # A change to this very resource after the first page: not in this listing.
        await store.append([new(rid, Renamed(changes=change("name", "a", "b")), 990)])
        await ProjectionRunner(store).catch_up()
        page = await history(store, rid, limit=2, cursor=page.next_cursor)
        items += page.items
    assert items == whole.items
    assert len(whole.items) > 2


@pytest.mark.parametrize(
    "query",
    [
        {"since": at(0)},
        {"since": at(40), "until": at(250)},
        {"since": at(10), "type": "qemu"},
        {"since": at(100), "until": at(400), "type": "lxc"},
    ],
    ids=lambda q: ",".join(q),
)
async def test_changes_pages_concatenate_to_the_first_pages_answer(
    store: EventStore, query: dict[str, Any]
) -> None:
    await _history_log(store)
    whole = await changes(store, limit=1000, **query)
    items, pages = await _pages(store, changes, **query)
    assert items == whole.items
    assert pages > 1


async def test_a_cursor_continues_from_another_process_and_after_a_restart(
    store: EventStore, database_url: str
) -> None:
    await _history_log(store)
    first = await inventory(store, limit=1, type="qemu")
    assert first.next_cursor is not None
    mine = await inventory(store, limit=4, cursor=first.next_cursor)
    other = await open_store(database_url)  # another process: the key is the database's
    try:
        theirs = await inventory(other, limit=4, cursor=first.next_cursor)
    finally:
        await other.close()
    assert theirs == mine
    assert all(r.type == "qemu" for r in theirs.items)


async def test_repeated_parameters_must_equal_the_cursors(store: EventStore) -> None:
    await _history_log(store)
    first = await inventory(store, limit=2, type="qemu", at=at(200))
    cursor = first.next_cursor
    assert cursor is not None
    same = await inventory(store, limit=7, type="qemu", at=at(200), cursor=cursor)
    alone = await inventory(store, limit=7, cursor=cursor)
    assert same == alone
    for param, value in (("type", "lxc"), ("at", at(201)), ("node", "pve1"), ("position", 3)):
        with pytest.raises(InvalidParameterError) as differs:
            await inventory(store, limit=2, cursor=cursor, **{param: value})
        assert differs.value.param == param
        assert differs.value.status == 400
    hist = await history(store, "lab/qemu/100", limit=1, since=at(1))
    assert hist.next_cursor is not None
    with pytest.raises(InvalidParameterError) as other_since:
        await history(store, "lab/qemu/100", limit=1, since=at(2), cursor=hist.next_cursor)
    assert other_since.value.param == "since"
    with pytest.raises(InvalidParameterError) as other_id:
        await history(store, "lab/qemu/101", limit=1, cursor=hist.next_cursor)
    assert other_id.value.param == "id"


async def test_an_edited_or_foreign_cursor_is_a_400_never_another_answer(
    store: EventStore,
) -> None:
    await _history_log(store)
    cursor = (await inventory(store, limit=2, type="qemu")).next_cursor
    assert cursor is not None
    body, mac = cursor.split(".")
    raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[1]["type"] = "lxc"  # the filter, edited
    forged = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    for bad in (f"{forged}.{mac}", body, f"{body}.AAAA", cursor[:-2], "not a cursor"):
        with pytest.raises(InvalidParameterError) as refused:
            await inventory(store, limit=2, cursor=bad)
        assert refused.value.param == "cursor"
    changes_cursor = (await changes(store, since=at(0), limit=1)).next_cursor
    assert changes_cursor is not None
    with pytest.raises(InvalidParameterError, match="does not belong"):
        await inventory(store, limit=2, cursor=changes_cursor)


async def test_the_longest_id_pages_its_history(store: EventStore) -> None:
    rid = "lab/storage/pve1/" + "x" * (1024 - len("lab/storage/pve1/"))
    state = {"id": rid, "cluster": "lab", "type": "storage", "node": "pve1", "name": "long"}
    await store.append(
        [new(rid, Discovered(state=state), 1)]
        + [new(rid, Renamed(changes=change("name", f"n{i}", f"n{i + 1}")), 2 + i) for i in range(5)]
    )
    await ProjectionRunner(store).catch_up()
    page = await history(store, rid, limit=2)
    seen = list(page.items)
    while page.next_cursor is not None:
        assert len(page.next_cursor) < 8192
        page = await history(store, rid, limit=2, cursor=page.next_cursor)
        seen += page.items
    assert len(seen) == 6


async def test_fields_first_learned_are_not_a_net_change(store: EventStore) -> None:
    """A guest discovered while its node was offline, whose name and config are learned
    later: the net change over that window is none (history shows ``learned``)."""
    from collectors.events import Learned

    rid = "lab/qemu/300"
    state = guest_state(rid, name=None, status="unknown", unknown=["name", "status", "config"])
    await store.append(
        [
            new(rid, Discovered(state=state), 10),
            new(
                rid,
                Learned(
                    changes=change("name", None, "batch")
                    + change("status", "unknown", "running")
                    + change("config.memory", None, "2048")
                    + change("unknown", ["name", "status", "config"], None)
                ),
                20,
            ),
            new(rid, Renamed(changes=change("name", "batch", "batch-2")), 30),
        ]
    )
    await ProjectionRunner(store).catch_up()
    assert (await changes(store, since=at(15), until=at(25))).items == []
    [renamed] = (await changes(store, since=at(25), until=at(35))).items
    assert [c.field for c in renamed.changes] == ["name"]
