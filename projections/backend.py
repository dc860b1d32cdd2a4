"""The projections' port to a database: what differs between SQLite and PostgreSQL.

The projection and query SQL is written once, with ``?`` placeholders and table names as
``{table}`` fields; a backend converts placeholders, times and the few statements that differ
(copying a table's shape, swapping tables, locking the checkpoints). ``sqlite.py`` and
``postgres.py`` implement it, like the event store's backends beside ``eventstore/store.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from eventstore import Connection, EventStore, Row


class Backend(abc.ABC):
    """One dialect's way of running the projections' SQL on the driver's own connection."""

    dialect: str

    overlap_io = False
    """Whether a rebuild reads its next batch and writes its last one while it folds: pays
    only where the database does that work in a process of its own, on another core (on
    SQLite the driver's threads would contend with the fold for the GIL, row by row)."""

    def short_reads(self, store: EventStore) -> AbstractAsyncContextManager[Connection]:
        """The connection for a request made of a few short, indexed reads (one resource at
        a point): the store's :meth:`~eventstore.EventStore.short_reads`."""
        return store.short_reads()

    def version_probe(self, where: str, order: str) -> str:
        """The FROM-clause part that joins each ``proj_resources r`` row to its one version
        ``v`` selected by ``where`` (over ``proj_versions x``) and the newest by ``order``:
        a correlated probe per resource, so the cost does not grow with the history."""
        return (
            "JOIN proj_versions v ON v.resource_id = r.resource_id AND v.valid_from_position = "
            f"(SELECT x.valid_from_position FROM proj_versions x WHERE {where} "
            f"ORDER BY {order} LIMIT 1)"
        )

    async def analyze(self, conn: Connection, table: str) -> None:
        """Refresh the planner's statistics of a table filled in bulk (where it needs it)."""
        return None  # SQLite plans these queries well without statistics

    # -- values --------------------------------------------------------------------------
    @abc.abstractmethod
    def time_in(self, value: datetime) -> Any:
        """A time as this backend stores and compares it."""

    @abc.abstractmethod
    def time_out(self, value: Any) -> datetime:
        """A stored time as an aware UTC datetime."""

    def time_or_none(self, value: Any) -> datetime | None:
        """:meth:`time_out`, passing None through."""
        return None if value is None else self.time_out(value)

    # -- statements (the store's one SQL: :class:`eventstore.Connection`) -----------------
    async def fetch(self, conn: Connection, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query (rows index like tuples)."""
        return await conn.fetch(sql, args)

    async def fetchone(self, conn: Connection, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        return await conn.fetchone(sql, args)

    async def execute(self, conn: Connection, sql: str, args: Sequence[Any] = ()) -> None:
        """Run one statement."""
        await conn.execute(sql, args)

    async def executemany(self, conn: Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row."""
        await conn.executemany(sql, rows)

    async def insert_many(
        self, conn: Connection, table: str, columns: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows (values in ``columns`` order), COPY on PostgreSQL."""
        await conn.insert_many(table, [c.strip() for c in columns.split(",")], rows)

    async def update_many(
        self, conn: Connection, template: str, table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Run a statement (``template`` with ``{t}`` for the table) once per row; a backend
        may run a known template as one set-based statement instead."""
        if rows:
            await conn.executemany(template.format(t=table), rows)

    # -- schema --------------------------------------------------------------------------
    async def table_exists(self, conn: Connection, name: str) -> bool:
        """Whether a table of that name is visible on this connection."""
        return await conn.table_exists(name)

    @abc.abstractmethod
    async def create_like(self, conn: Connection, table: str, shadow: str) -> list[str]:
        """Create an empty table ``shadow`` with ``table``'s columns; returns the statements
        that give it ``table``'s keys and indexes, to run once it is filled (building an
        index from sorted rows once is far cheaper than keeping it up to date per row)."""

    async def create_indexes(self, conn: Connection, statements: Sequence[str]) -> None:
        """Run what :meth:`create_like` returned (a rebuild, after filling its shadows)."""
        for statement in statements:
            await self.execute(conn, statement)

    async def drop_table(self, conn: Connection, name: str) -> None:
        """Drop a table if it exists (a rebuild's leftover shadow)."""
        await self.execute(conn, f"DROP TABLE IF EXISTS {name}")

    async def swap(self, conn: Connection, table: str, shadow: str) -> None:
        """Replace ``table`` by ``shadow`` inside the caller's transaction."""
        await self.execute(conn, f"DROP TABLE {table}")
        await self.execute(conn, f"ALTER TABLE {shadow} RENAME TO {table}")

    async def bulk_mode(self, conn: Connection, on: bool) -> None:
        """Tune the writer connection for a rebuild's large batches (and back)."""
        return None  # nothing to tune by default

    @abc.abstractmethod
    async def lock_checkpoints(self, conn: Connection) -> dict[str, int]:
        """Every projection's checkpoint, locked until the caller's transaction ends."""


def backend_for(store: EventStore) -> Backend:
    """The backend of a store's dialect (one instance per store, caching converted SQL)."""
    found: Backend | None = getattr(store, "_projections_backend", None)
    if found is None:
        if store.dialect == "sqlite":
            from .sqlite import SQLiteBackend

            found = SQLiteBackend()
        else:
            from .postgres import PostgresBackend

            found = PostgresBackend()
        store._projections_backend = found  # type: ignore[attr-defined]
    return found
