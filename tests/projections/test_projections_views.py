"""The stable SQL views (docs/sql.md) on both backends: they answer what the read side answers
(history, the inventory at a time, the relation graph), and a rebuild never breaks them."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from datetime import datetime
from typing import Any

import msgspec
import pytest

from collectors.events import ENDS, ConfigChanged, Discovered, StatusChanged
from eventstore import Connection, EventStore, open_store
from eventstore.sql import time_in
from eventstore.sqlite import SQLiteEventStore
from projections.queries import history, inventory, relations
from projections.runner import ProjectionRunner, rebuild
from tests.projections.projection_helpers import (
    at,
    change,
    guest_state,
    new,
    normalise,
    random_events,
    resource_state,
)
from tests.waiting import GENEROUS_S, until

CHANGE_ROWS = (
    "SELECT id, position, event, field, old, new, observed_at, observed_after, effective_at, "
    "actor_user, actor_token, actor_upid FROM pvetrail_changes"
)
INVENTORY_AT = (
    "SELECT id, state FROM pvetrail_versions "
    "WHERE valid_from <= ? AND (valid_to IS NULL OR valid_to > ?) ORDER BY id"
)
EDGES_AT = (
    "SELECT from_id, rel, to_id, attrs FROM pvetrail_edges "
    "WHERE valid_from <= ? AND (valid_to IS NULL OR valid_to > ?) "
    "ORDER BY from_id, rel, to_id, attrs"
)


def as_text(value: Any) -> str | None:
    """A value as the changes view's old/new columns give it: a string as it is, anything
    else as its JSON (numbers, true/false, lists and objects)."""
    if value is None or isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def json_value(stored: Any) -> Any:
    """A JSON column (TEXT on SQLite, JSONB on PostgreSQL: both arrive as text)."""
    return msgspec.json.decode(stored)


async def inventory_from_views(conn: Connection, t: datetime) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(INVENTORY_AT, [conn.time_in(t)] * 2)
    return {row[0]: normalise(json_value(row[1])) for row in rows}


async def seeded(store: EventStore, count: int, seed: int) -> None:
    await store.append(random_events(random.Random(seed), count))
    assert await ProjectionRunner(store).catch_up() == await store.head()


async def test_the_changes_view_lists_what_history_lists(store: EventStore) -> None:
    """Every event of every resource, field by field: the same fields, old and new values
    (as text), window and actor as GET /resources/{id}/history; a removal is one row with
    field NULL; the effective time is the version's."""
    rid = "lab/qemu/900"
    await store.append(
        [
            # the edges of what a discovery may hold: pending keys, a boolean, a real, a
            # list, a nested object, nulls (not listed); a config change naming its digest
            # itself, one without rows; a status change with no rows
            new(
                rid,
                Discovered(
                    state=guest_state(
                        rid,
                        config={"memory": 2048, "onboot": True, "ratio": 1.5, "x": None},
                        pending={"memory": "4096"},
                        tags=["a", "b"],
                        ha={"state": "started", "group": None},
                    )
                ),
                1,
            ),
            new(rid, ConfigChanged(changes=change("digest", "d1", "d2"), digest="d2"), 2),
            new(rid, ConfigChanged(changes=[], digest="d3"), 3),
            new(rid, StatusChanged(changes=[]), 4),
        ]
    )
    await seeded(store, 700, 3)
    async with store.read_connection() as conn:
        rows = await conn.fetch(CHANGE_ROWS)
        begun = {
            (row[0], row[1]): row[2]
            for row in await conn.fetch(
                "SELECT resource_id, valid_from_position, valid_from_time FROM proj_versions"
            )
        }
    view: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in rows:
        view.setdefault((row[0], row[1]), []).append(tuple(row[2:]))
    expected: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for rid in sorted({key[0] for key in view}):
        page = await history(store, rid, limit=1000)
        assert page.next_cursor is None
        for entry in page.items:
            fields = [(c.field, as_text(c.old), as_text(c.new)) for c in entry.changes]
            actor = entry.actor
            window = (
                store_time(store, entry.observed_at),
                store_time(store, entry.observed_after),
                begun.get((rid, entry.position)),
                *(
                    (actor.user, actor.token, actor.upid)
                    if actor is not None
                    else (None, None, None)
                ),
            )
            expected[(rid, entry.position)] = [
                (entry.event, *field, *window) for field in fields or [(None, None, None)]
            ]
    removals = [key for key, found in view.items() if found[0][0] in ENDS]
    assert removals, "the random log removes something"
    for key in removals:  # effective from the end of the version it ended, not a new one
        entry = expected[key][0]
        expected[key] = [(*entry[:6], view[key][0][6], *entry[7:])]
    assert {k: sorted(v, key=repr) for k, v in view.items()} == {
        k: sorted(v, key=repr) for k, v in expected.items()
    }
    assert any(row[3] is not None and row[3].startswith("config.") for row in rows)
    assert any(row[9] is not None for row in rows), "some actor"


def store_time(store: EventStore, value: datetime | None) -> Any:
    """A time as the views give it: format_time text on SQLite, the datetime on PostgreSQL."""
    return None if value is None else time_in(store.dialect, value)


async def test_the_views_answer_the_inventory_and_the_graph_at_a_time(store: EventStore) -> None:
    """The documented "as of T" condition on pvetrail_versions and pvetrail_edges gives what
    GET /resources?at=T and GET /relations?at=T give, at times the clock stepped back too;
    pvetrail_resources is the inventory now (removed ones marked)."""
    await seeded(store, 500, 11)
    for seconds in (0.0, 30.5, 200.0, 333.0, 600.0, 900.0):
        t = at(seconds)
        page = await inventory(store, at=t, limit=1000)
        graph = await relations(store, at=t)
        async with store.read_connection() as conn:
            assert await inventory_from_views(conn, t) == {
                r.id: resource_state(r) for r in page.items
            }, seconds
            edges = await conn.fetch(EDGES_AT, [conn.time_in(t)] * 2)
        assert [(e[0], e[1], e[2], json_value(e[3])) for e in edges] == [
            (e.from_, e.rel, e.to, e.attrs) for e in graph.edges
        ], seconds
    now = await inventory(store, limit=1000)
    async with store.read_connection() as conn:
        current = await conn.fetch(
            "SELECT id, state, removed, position, config FROM pvetrail_resources ORDER BY id"
        )
        configs = await conn.fetch("SELECT state, config FROM pvetrail_versions")
    assert {r[0]: normalise(json_value(r[1])) for r in current if r[2] == 0} == {
        r.id: resource_state(r) for r in now.items
    }
    # the config column is the state's config ({} where there is none), in both views
    for state, config in [(r[1], r[4]) for r in current] + [tuple(r) for r in configs]:
        assert json_value(config) == (json_value(state).get("config") or {})
    assert any(json_value(r[4]) for r in current), "some resource has a config"
    assert any(r[2] == 1 for r in current), "a removed one is listed, marked"


async def view_answers(store: EventStore) -> list[list[tuple[Any, ...]]]:
    """Every view's rows (one statement each), in a stable order."""
    async with store.read_connection() as conn:
        return [
            [tuple(r) for r in await conn.fetch(sql)]
            for sql in (
                "SELECT id, state, position FROM pvetrail_resources ORDER BY id",
                "SELECT id, valid_from_position, valid_to, state FROM pvetrail_versions "
                "ORDER BY id, valid_from_position",
                "SELECT position, id, field, old, new, effective_at FROM pvetrail_changes "
                "ORDER BY position, id, field",
                "SELECT from_id, rel, to_id, valid_from_position, valid_to FROM pvetrail_edges "
                "ORDER BY from_id, rel, to_id, valid_from_position",
                "SELECT n FROM my_removals ORDER BY n",
            )
        ]


async def test_views_answer_during_and_after_a_rebuild(store: EventStore) -> None:
    """Queries on the views while a rebuild fills its shadows and swaps them in, and after,
    all answer (none fails on a dropped table or view) and answer the same; a view of one's
    own over the stable views survives too (on PostgreSQL with its grant and comment), and so
    does the rebuild of one projection alone."""
    await seeded(store, 600, 5)
    async with store.transaction() as conn:
        await conn.execute(
            "CREATE VIEW my_removals AS SELECT count(*) AS n FROM pvetrail_changes "
            "WHERE event = 'removed'"
        )
        if store.dialect == "postgresql":
            await conn.execute("GRANT SELECT ON my_removals TO PUBLIC")
            await conn.execute("COMMENT ON VIEW my_removals IS 'mine'")
    before = await view_answers(store)
    assert all(before), "every view has rows"
    answers: list[list[list[tuple[Any, ...]]]] = []
    done = asyncio.Event()

    async def read_all_the_time() -> None:
        while not done.is_set():
            answers.append(await view_answers(store))
            await asyncio.sleep(0)

    reader = asyncio.create_task(read_all_the_time())
    try:
        await rebuild(store, batch_size=7)
        during = len(answers)
        await rebuild(store, ["relations"], batch_size=29)
    finally:
        done.set()
        await reader
    answers.append(await view_answers(store))
    assert during > 1, during
    for answer in answers:
        assert answer == before
    async with store.read_connection() as conn:
        if store.dialect == "postgresql":
            kept = await conn.fetchone(
                "SELECT obj_description('my_removals'::regclass, 'pg_class'), "
                "has_table_privilege('public', 'my_removals', 'SELECT')"
            )
            assert tuple(kept or ()) == ("mine", True)
        page = await inventory(store, at=at(400.0), limit=1000)
        assert await inventory_from_views(conn, at(400.0)) == {
            r.id: resource_state(r) for r in page.items
        }


SNAPSHOT = (
    "SELECT (SELECT count(*) FROM pvetrail_resources WHERE removed = 0), "
    "(SELECT count(*) FROM pvetrail_versions WHERE valid_to IS NULL), "
    "(SELECT count(*) FROM pvetrail_versions) "
    "+ (SELECT count(*) FROM pvetrail_versions WHERE ended_by_removal = 1), "
    "(SELECT count(DISTINCT position) FROM pvetrail_changes), "
    "(SELECT max(position) FROM pvetrail_changes)"
)
"""One statement, so one snapshot: resources alive and versions open; versions and removals
(each one event) and the events the changes view lists; the last of them."""


async def test_the_views_answer_a_read_only_open_while_serve_writes(sqlite_url: str) -> None:
    """SQLite: another program opens the file read-only (``mode=ro``) and queries the views
    while the log grows, the runner follows it and a rebuild swaps its tables in: every
    answer is one consistent snapshot, none fails, it cannot write, and it ends at the
    writer's last state."""
    store = await open_store(sqlite_url)
    assert isinstance(store, SQLiteEventStore)
    events = random_events(random.Random(8), 700)
    stop = threading.Event()
    seen: list[tuple[int, ...]] = []
    errors: list[BaseException] = []

    def read_only() -> None:
        # Autocommit (as docs/sql.md says): each query its own snapshot of the log.
        db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                db.execute("DELETE FROM settings")
            while not stop.is_set():
                seen.append(tuple(db.execute(SNAPSHOT).fetchone()))
                time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    reader = threading.Thread(target=read_only, name="read-only", daemon=True)
    runner = ProjectionRunner(store, idle_timeout=0.2)
    try:
        await store.migrate()
        await store.append(events[:100])
        await runner.catch_up()
        await runner.start()
        reader.start()

        async def append() -> None:
            for start in range(100, len(events), 10):
                await store.append(events[start : start + 10])
                await asyncio.sleep(0.005)

        appending = asyncio.create_task(append())
        await rebuild(store, batch_size=40)
        await appending
        assert await runner.wait_until(await store.head(), timeout=GENEROUS_S)
        async with store.read_connection() as conn:
            final = tuple(await conn.fetchone(SNAPSHOT) or ())
        await until(lambda: (bool(seen) and seen[-1] == final) or bool(errors), what="last state")
    finally:
        stop.set()
        reader.join(GENEROUS_S)
        await runner.stop()
        await store.close()
    assert not errors, errors
    assert len(set(seen)) > 5, "the reader saw the log grow"
    for alive, open_versions, begun_or_ended, listed, _ in seen:
        assert alive == open_versions
        assert begun_or_ended == listed
