"""The projections' port to a database: what differs between SQLite and PostgreSQL.

The projection and query SQL is written once, with ``?`` placeholders and table names as
``{table}`` fields; a dialect converts placeholders, times and the few statements that differ
(copying a table's shape, swapping tables, locking the checkpoints, the batch writes).
``sqlite.py`` and ``postgres.py`` implement it, like the event store's backends beside
``eventstore/store.py``; :func:`projections.dialects.dialect_for` picks a store's (this module
imports neither implementation).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, TypeVar

from eventstore import Dialect, EventStore

from .fold import RESOURCE_COLUMNS

# The batch writes, in their generic form: one statement per row (``{t}``: the table, the
# live one or a rebuild's shadow). A dialect may override the operation that runs each.
UPSERT_RESOURCE = (
    "INSERT INTO {t} (" + RESOURCE_COLUMNS + ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (resource_id) DO UPDATE SET cluster = excluded.cluster, "
    "type = excluded.type, node = excluded.node, vmid = excluded.vmid, name = excluded.name, "
    "status = excluded.status, tags = excluded.tags, pool = excluded.pool, "
    "lock = excluded.lock, digest = excluded.digest, state = excluded.state, "
    "removed = excluded.removed, position = excluded.position, "
    "observed_at = excluded.observed_at, first_position = excluded.first_position, "
    "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
    "config_position = excluded.config_position"
)
CLOSE_VERSION = (
    "UPDATE {t} SET valid_to_position = ?, valid_to_time = ?, ended_by_removal = ? "
    "WHERE resource_id = ? AND valid_from_position = ?"
)
CLOSE_EDGE = (
    "UPDATE {t} SET until_position = ?, until_time = ? "
    "WHERE from_id = ? AND rel = ? AND to_id = ? AND attrs = ? AND until_position IS NULL"
)


R = TypeVar("R")


def records(kind: Callable[..., R], rows: Iterable[Iterable[Any]]) -> list[R]:
    """Rows of :meth:`ProjectionDialect.fetch` as named records: ``kind``'s fields are the
    statement's columns, in order."""
    # The read side's records are msgspec Structs with gc=False (they hold only strings,
    # numbers and times): NamedTuples, which the garbage collector tracks for life, made
    # the whole inventory's SQL 12 % slower in CPU time (10,000 rows), Structs 3 %.
    return [kind(*row) for row in rows]


class ProjectionDialect(abc.ABC):
    """One SQL dialect's way of running the projections' SQL on the driver's own connection
    (one instance per store: it caches converted statements and what it learnt)."""

    name: Dialect

    overlap_io = False
    """Whether a rebuild reads its next batch and writes its last one while it folds: pays
    only where the database does that work in a process of its own, on another core (on
    SQLite the driver's threads would contend with the fold for the GIL, row by row)."""

    observations_seen: bool
    """Whether the collectors' ``observations`` table was found (it is never dropped once
    there, so only its presence is remembered; see :mod:`projections.versions`)."""

    def __init__(self) -> None:
        self._converted: dict[str, str] = {}
        self.observations_seen = False

    def sql(self, text: str) -> str:
        """The statement in this dialect's placeholder style (converted once, then cached)."""
        found = self._converted.get(text)
        if found is None:
            found = self._convert(text)
            self._converted[text] = found
        return found

    def _convert(self, text: str) -> str:
        return text

    def short_reads(self, store: EventStore) -> AbstractAsyncContextManager[Any]:
        """The connection for a request made of a few short, indexed reads (one resource at
        a point): by default one of the store's readers; a dialect may answer such reads more
        cheaply. Only :meth:`fetch` and :meth:`fetchone` run on it."""
        return store.read_connection()

    def version_probe(self, where: str, order: str) -> str:
        """The FROM-clause part that joins each ``proj_resources r`` row to its one version
        ``v`` selected by ``where`` (over ``proj_versions x``) and the newest by ``order``:
        a correlated probe per resource, so the cost does not grow with the history."""
        return (
            "JOIN proj_versions v ON v.resource_id = r.resource_id AND v.valid_from_position = "
            f"(SELECT x.valid_from_position FROM proj_versions x WHERE {where} "
            f"ORDER BY {order} LIMIT 1)"
        )

    async def analyze(self, conn: Any, table: str) -> None:
        """Refresh the planner's statistics of a table filled in bulk (where it needs it)."""
        return None  # SQLite plans these queries well without statistics

    # -- values --------------------------------------------------------------------------
    @abc.abstractmethod
    def time_in(self, value: datetime) -> Any:
        """A time as this dialect stores and compares it."""

    @abc.abstractmethod
    def time_out(self, value: Any) -> datetime:
        """A stored time as an aware UTC datetime."""

    def time_or_none(self, value: Any) -> datetime | None:
        """:meth:`time_out`, passing None through."""
        return None if value is None else self.time_out(value)

    # -- statements ----------------------------------------------------------------------
    @abc.abstractmethod
    async def fetch(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """All rows of a query (rows index like tuples)."""

    async def fetchone(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""
        rows = await self.fetch(conn, sql, args)
        return rows[0] if rows else None

    @abc.abstractmethod
    async def execute(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> None:
        """Run one statement."""

    @abc.abstractmethod
    async def executemany(self, conn: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row."""

    async def insert_many(
        self, conn: Any, table: str, columns: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows (values in ``columns`` order); a dialect may use a faster path."""
        if rows:
            marks = ",".join("?" * len(rows[0]))
            await self.executemany(conn, f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    async def upsert_resources(self, conn: Any, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace ``proj_resources`` rows (RESOURCE_COLUMNS order) in ``table``."""
        if rows:
            await self.executemany(conn, UPSERT_RESOURCE.format(t=table), rows)

    async def close_versions(self, conn: Any, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """End versions in ``table``: rows of (valid_to_position, valid_to_time,
        ended_by_removal, resource_id, valid_from_position)."""
        if rows:
            await self.executemany(conn, CLOSE_VERSION.format(t=table), rows)

    async def close_edges(self, conn: Any, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """End open edges in ``table``: rows of (until_position, until_time, from_id, rel,
        to_id, attrs)."""
        if rows:
            await self.executemany(conn, CLOSE_EDGE.format(t=table), rows)

    # -- schema --------------------------------------------------------------------------
    @abc.abstractmethod
    async def table_exists(self, conn: Any, name: str) -> bool:
        """Whether a table of that name is visible on this connection."""

    @abc.abstractmethod
    async def create_like(self, conn: Any, table: str, shadow: str) -> list[str]:
        """Create an empty table ``shadow`` with ``table``'s columns; returns the statements
        that give it ``table``'s keys and indexes, to run once it is filled (building an
        index from sorted rows once is far cheaper than keeping it up to date per row)."""

    async def create_indexes(self, conn: Any, statements: Sequence[str]) -> None:
        """Run what :meth:`create_like` returned (a rebuild, after filling its shadows)."""
        for statement in statements:
            await self.execute(conn, statement)

    async def drop_table(self, conn: Any, name: str) -> None:
        """Drop a table if it exists (a rebuild's leftover shadow)."""
        await self.execute(conn, f"DROP TABLE IF EXISTS {name}")

    async def swap(self, conn: Any, table: str, shadow: str) -> None:
        """Replace ``table`` by ``shadow`` inside the caller's transaction."""
        await self.execute(conn, f"DROP TABLE {table}")
        await self.execute(conn, f"ALTER TABLE {shadow} RENAME TO {table}")

    async def bulk_mode(self, conn: Any, on: bool) -> None:
        """Tune the writer connection for a rebuild's large batches (and back)."""
        return None  # nothing to tune by default

    @abc.abstractmethod
    async def lock_checkpoints(self, conn: Any) -> dict[str, int]:
        """Every projection's checkpoint, locked until the caller's transaction ends."""
