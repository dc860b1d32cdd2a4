"""docs/sql.md against the database: each view's columns are the documented ones, and each
example query, run on both backends against a history the real collectors recorded from a
fakepve, answers what the HTTP API answers for the same times."""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from typing import Any

import msgspec
import pytest

from eventstore import Connection, EventStore, format_time, open_store, parse_time, utcnow
from projections.views import VIEWS
from tests.api.conftest import Server, ServerFactory
from tests.api.recorded import fill
from tests.api.sql_examples import bind, documented_columns, examples
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import ServedPve

KEY = b"k" * 32


def text(value: Any) -> str | None:
    """A value as the examples' rows compare: text (numbers from SQLite's json_extract)."""
    return None if value is None else str(value)


def change_text(change: dict[str, Any]) -> tuple[str | None, ...]:
    """An API change as the changes view's (field, old, new) give it."""
    return change["field"], as_text(change["old"]), as_text(change["new"])


def as_text(value: Any) -> str | None:
    """An API value as the changes view's old/new columns give it (see docs/sql.md)."""
    if value is None or isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


async def view_columns(store: EventStore, view: str) -> list[str]:
    async with store.read_connection() as conn:
        if store.dialect == "sqlite":
            return [row[1] for row in await conn.fetch(f"PRAGMA table_info({view})")]
        rows = await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            [view],
        )
        return [row[0] for row in rows]


async def test_the_views_have_the_documented_columns(store: EventStore) -> None:
    documented = documented_columns()
    assert list(documented) == list(VIEWS)
    for view in VIEWS:
        assert await view_columns(store, view) == documented[view], view


def test_every_example_is_given_for_both_backends() -> None:
    found = examples()
    names = {name for name, _ in found}
    assert names >= {"inventory-at", "node-changes", "history", "graph-at"}
    assert set(found) == {(name, backend) for name in names for backend in ("sqlite", "postgresql")}


async def run_example(
    conn: Connection, store: EventStore, name: str, **values: Any
) -> list[tuple[Any, ...]]:
    """The example as docs/sql.md writes it for this backend, times bound as it stores them."""
    bound = {k: conn.time_in(v) if isinstance(v, datetime) else v for k, v in values.items()}
    sql, args = bind(examples()[(name, store.dialect)], store.dialect, bound)
    return [tuple(row) for row in await conn.fetch(sql, args)]


async def api(server: Server, path: str, **params: Any) -> Any:
    query = urllib.parse.urlencode(
        {k: format_time(v) if isinstance(v, datetime) else v for k, v in params.items()}
    )
    status, body, _ = await server.get(f"/api/v1{path}?{query}")
    assert status == 200, body
    assert body.get("next_cursor") is None
    return body


async def test_the_documented_examples_answer_what_the_api_answers(
    database_url: str,
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
) -> None:
    _, first, changed, removed = await fill(database_url, served, operator)
    server = await serve_app()
    async with store.read_connection() as conn:
        # the inventory at T, before and after the changes and after the removal
        for t in (first, changed, removed):
            page = await api(server, "/resources", at=t, limit=1000)
            rows = await run_example(conn, store, "inventory-at", t=t)
            # json_extract gives SQLite's number, ->> PostgreSQL's text
            assert [(*r[:5], text(r[5])) for r in rows] == [
                (
                    *(r[k] for k in ("id", "type", "node", "name", "status")),
                    text(r["config"].get("memory")),
                )
                for r in page["items"]
            ]
            rows = await run_example(conn, store, "graph-at", t=t)
            graph = await api(server, "/relations", at=t)
            assert [(r[0], r[1], r[2], msgspec.json.decode(r[3])) for r in rows] == [
                (e["from"], e["rel"], e["to"], e["attrs"]) for e in graph["edges"]
            ]
        # what changed on pve2 between the first poll and the second, field by field, is
        # what the history of each resource listed says of that window; and it names every
        # resource GET /changes finds changed there
        rows = await run_example(conn, store, "node-changes", node="pve2", t1=first, t2=changed)
        ids = sorted({row[1] for row in rows})
        net = await api(server, "/changes", since=first, until=changed, limit=1000)
        on_pve2 = []
        for item in net["items"]:
            status, now, _ = await server.get(
                f"/api/v1/resources/{item['id']}?at={urllib.parse.quote(format_time(changed))}"
            )
            if status == 200 and now["node"] == "pve2":
                on_pve2.append(item["id"])
        assert {"lab/qemu/100", "lab/qemu/101"} <= set(ids)
        assert ids == sorted(on_pve2)
        for rid in ids:
            page = await api(server, f"/resources/{rid}/history", since=first, until=changed)
            expected = sorted(
                (e["event"], *change_text(c), (e["actor"] or {}).get("user"))
                for e in page["items"]
                for c in e["changes"] or [{"field": None, "old": None, "new": None}]
            )
            assert sorted(row[3:] for row in rows if row[1] == rid) == expected, rid
        cores = [row for row in rows if row[1] == "lab/qemu/101" and row[4] == "config.cores"]
        assert [(row[5], row[6]) for row in cores] == [("1", "4")]
        migrated = [row for row in rows if row[1] == "lab/qemu/100" and row[4] == "node"]
        assert [(row[3], *row[5:]) for row in migrated] == [
            ("migrated", "pve1", "pve2", "root@pam")
        ]
        # one resource's whole history, its removal included
        rows = await run_example(conn, store, "history", id="lab/qemu/101")
        page = await api(server, "/resources/lab/qemu/101/history", limit=1000)
        assert sorted(rows, key=repr) == sorted(
            (
                (
                    e["position"],
                    e["event"],
                    store_time(conn, e["observed_after"]),
                    store_time(conn, e["observed_at"]),
                    *change_text(c),
                    (e["actor"] or {}).get("user"),
                )
                for e in page["items"]
                for c in e["changes"] or [{"field": None, "old": None, "new": None}]
            ),
            key=repr,
        )
        assert rows[-1][1] == "removed"


def store_time(conn: Connection, value: str | None) -> Any:
    """An API time as the views give it."""
    return None if value is None else conn.time_in(parse_time(value))


@pytest.mark.parametrize("name", ["inventory-at", "node-changes"])
async def test_the_sqlite_examples_search_the_time_index(sqlite_url: str, name: str) -> None:
    """SQLite plans without statistics (pvetrail keeps none), so its plans are the same on
    every database: the examples must search the versions' time index, not walk every
    version (docs/sql.md's '+id'; bench/views_bench.py times them at 100,000 events)."""
    store = await open_store(sqlite_url)
    try:
        await store.migrate()
        t = store_time_now()
        async with store.read_connection() as conn:
            sql, args = bind(
                examples()[(name, "sqlite")], "sqlite", {"t": t, "t1": t, "t2": t, "node": "pve2"}
            )
            plan = [str(row[-1]) for row in await conn.fetch("EXPLAIN QUERY PLAN " + sql, args)]
    finally:
        await store.close()
    assert any("USING INDEX proj_versions_from_time" in line for line in plan), plan
    assert not any(line.startswith("SCAN") and "proj_versions" in line for line in plan), plan


def store_time_now() -> str:
    return format_time(utcnow())
