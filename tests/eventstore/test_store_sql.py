"""The store's one SQL for its companions (:class:`eventstore.Connection`), on both backends.

Each statement below is written once, with ``?`` placeholders and times as datetimes, and must
mean the same on SQLite and PostgreSQL: that is what lets the projections, the observations
table and every later table drop their own dialect branches.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventstore import Connection, EventStore, EventStoreError

_TABLE = "CREATE TABLE sql_probe (name TEXT PRIMARY KEY, n INTEGER, at {time})"
_TIME = {"sqlite": "TEXT", "postgresql": "TIMESTAMPTZ"}
T0 = datetime(2026, 11, 3, 14, 3, 7, 123456, tzinfo=UTC)


async def _probe_table(store: EventStore) -> None:
    async with store.transaction() as conn:
        assert isinstance(conn, Connection)
        assert conn.dialect == store.dialect
        await conn.execute(_TABLE.format(time=_TIME[conn.dialect]))


async def test_statements_are_written_once_with_question_marks(store: EventStore) -> None:
    await _probe_table(store)
    # An offset other than UTC goes in; UTC comes out, the same instant.
    eastern = T0.astimezone(timezone(timedelta(hours=-5)))
    async with store.transaction() as conn:
        assert await conn.table_exists("sql_probe")
        assert not await conn.table_exists("no_such_table")
        await conn.execute(
            "INSERT INTO sql_probe (name, n, at) VALUES (?, ?, ?)", ("a", 1, conn.time_in(eastern))
        )
        await conn.executemany(
            "INSERT INTO sql_probe (name, n, at) VALUES (?, ?, ?)",
            [(f"m{i}", i, conn.time_in(T0 + timedelta(seconds=i))) for i in range(3)],
        )
        await conn.insert_many(
            "sql_probe",
            ["name", "n", "at"],
            [(f"b{i}", 10 + i, conn.time_in(T0 - timedelta(days=i))) for i in range(3)],
        )
        await conn.insert_many("sql_probe", ["name", "n", "at"], [])  # nothing: no statement
    async with store.read_connection() as conn:
        rows = await conn.fetch("SELECT name, n FROM sql_probe WHERE n >= ? ORDER BY n, name", (1,))
        assert [tuple(r) for r in rows] == [
            ("a", 1),
            ("m1", 1),
            ("m2", 2),
            ("b0", 10),
            ("b1", 11),
            ("b2", 12),
        ]
        first = await conn.fetchone("SELECT at FROM sql_probe WHERE name = ?", ("a",))
        assert first is not None
        stored = conn.time_out(first[0])
        assert stored == T0
        assert stored.tzinfo == UTC
        assert await conn.fetchone("SELECT at FROM sql_probe WHERE name = ?", ("none",)) is None
        assert await conn.fetchval("SELECT count(*) FROM sql_probe") == 7
        assert await conn.fetchval("SELECT n FROM sql_probe WHERE name = ?", ("none",)) is None
        assert conn.time_or_none(None) is None
        # Times compare in the database as instants, whatever the dialect stores.
        later = await conn.fetch(
            "SELECT name FROM sql_probe WHERE at > ? ORDER BY name", (conn.time_in(T0),)
        )
        assert [r[0] for r in later] == ["m1", "m2"]


async def test_a_failed_transaction_leaves_nothing_and_errors_are_the_stores(
    store: EventStore,
) -> None:
    await _probe_table(store)

    async def insert_twice() -> None:
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO sql_probe (name, n) VALUES (?, ?)", ("x", 1))
            await conn.execute("INSERT INTO sql_probe (name, n) VALUES (?, ?)", ("x", 2))

    with pytest.raises(EventStoreError):
        await insert_twice()
    async with store.read_connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sql_probe") == 0


async def test_short_reads_read_and_never_write(store: EventStore) -> None:
    await _probe_table(store)
    async with store.transaction() as conn:
        await conn.execute("INSERT INTO sql_probe (name, n) VALUES (?, ?)", ("s", 5))
    async with store.short_reads() as conn:
        assert await conn.fetchval("SELECT n FROM sql_probe WHERE name = ?", ("s",)) == 5
        if store.dialect == "sqlite":
            # The inline reader: a write through it would bypass the writer's lock.
            with pytest.raises(EventStoreError, match="cannot execute"):
                await conn.execute("DELETE FROM sql_probe")
    async with store.read_connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sql_probe") == 1
