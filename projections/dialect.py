"""The projections' port to a database: what differs between SQLite and PostgreSQL.

The projection and query SQL is written once, with ``?`` placeholders and table names as
``{table}`` fields, and runs on the store's :class:`eventstore.Connection` (which converts
placeholders and times); a dialect holds only the few statements that differ (copying a
table's shape, swapping tables, locking the checkpoints, the batch writes, the version probe).
``sqlite.py`` and ``postgres.py`` implement it, like the event store's backends beside
``eventstore/store.py``; :func:`projections.dialects.dialect_for` picks a store's (this module
imports neither implementation).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from eventstore import Connection, Dialect
from eventstore.sql import time_in, time_out

from .fold import RESOURCE_COLUMNS
from .models import ReaderGrant

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
    """Rows of :meth:`eventstore.Connection.fetch` as named records: ``kind``'s fields are the
    statement's columns, in order."""
    # The read side's records are msgspec Structs with gc=False (they hold only strings,
    # numbers and times): NamedTuples, which the garbage collector tracks for life, made
    # the whole inventory's SQL 12 % slower in CPU time (10,000 rows), Structs 3 %.
    return [kind(*row) for row in rows]


class ProjectionDialect(abc.ABC):
    """What differs between SQL dialects for the projections (one instance per store: it
    remembers what it learnt)."""

    name: Dialect

    overlap_io = False
    """Whether a rebuild reads its next batch and writes its last one while it folds: pays
    only where the database does that work in a process of its own, on another core (on
    SQLite the driver's threads would contend with the fold for the GIL, row by row)."""

    observations_seen: bool
    """Whether the collectors' ``observations`` table was found (it is never dropped once
    there, so only its presence is remembered; see :mod:`projections.versions`)."""

    def __init__(self) -> None:
        self.observations_seen = False

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

    # -- values (the store's one SQL: :class:`eventstore.Connection`) ----------------------
    def time_in(self, value: datetime) -> Any:
        """A time as this dialect stores and compares it (for statements built before a
        connection is at hand, such as a point's bound)."""
        return time_in(self.name, value)

    def time_out(self, value: Any) -> datetime:
        """A stored time as an aware UTC datetime."""
        return time_out(self.name, value)

    def time_or_none(self, value: Any) -> datetime | None:
        """:meth:`time_out`, passing None through."""
        return None if value is None else time_out(self.name, value)

    # -- the batch writes ------------------------------------------------------------------
    async def upsert_resources(
        self, conn: Connection, table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert or replace ``proj_resources`` rows (RESOURCE_COLUMNS order) in ``table``."""
        if rows:
            await conn.executemany(UPSERT_RESOURCE.format(t=table), rows)

    async def close_versions(
        self, conn: Connection, table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """End versions in ``table``: rows of (valid_to_position, valid_to_time,
        ended_by_removal, resource_id, valid_from_position)."""
        if rows:
            await conn.executemany(CLOSE_VERSION.format(t=table), rows)

    async def close_edges(
        self, conn: Connection, table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """End open edges in ``table``: rows of (until_position, until_time, from_id, rel,
        to_id, attrs)."""
        if rows:
            await conn.executemany(CLOSE_EDGE.format(t=table), rows)

    # -- schema --------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_like(self, conn: Connection, table: str, shadow: str) -> list[str]:
        """Create an empty table ``shadow`` with ``table``'s columns; returns the statements
        that give it ``table``'s keys and indexes, to run once it is filled (building an
        index from sorted rows once is far cheaper than keeping it up to date per row)."""

    async def create_indexes(self, conn: Connection, statements: Sequence[str]) -> None:
        """Run what :meth:`create_like` returned (a rebuild, after filling its shadows)."""
        for statement in statements:
            await conn.execute(statement)

    async def drop_table(self, conn: Connection, name: str) -> None:
        """Drop a table if it exists (a rebuild's leftover shadow)."""
        await conn.execute(f"DROP TABLE IF EXISTS {name}")

    async def swap(self, conn: Connection, table: str, shadow: str) -> None:
        """Replace ``table`` by ``shadow`` inside the caller's transaction (the views over
        ``table`` dropped first: see :meth:`drop_views`)."""
        await conn.execute(f"DROP TABLE {table}")
        await conn.execute(f"ALTER TABLE {shadow} RENAME TO {table}")

    @abc.abstractmethod
    async def drop_views(self, conn: Connection, tables: Sequence[str]) -> list[str]:
        """Drop the views that read ``tables`` (the stable views of docs/sql.md, and any a
        user made over them) inside the caller's transaction; returns the statements that
        recreate them as they were, from the database's own record of their definitions,
        for :meth:`restore_views` once the tables are swapped. (PostgreSQL refuses to drop a
        table a view reads; SQLite's RENAME re-parses every view and fails on one left
        reading a dropped table.)"""

    async def restore_views(self, conn: Connection, statements: Sequence[str]) -> None:
        """Run what :meth:`drop_views` returned, in the same transaction."""
        for statement in statements:
            await conn.execute(statement)

    async def bulk_mode(self, conn: Connection, on: bool) -> None:
        """Tune the writer connection for a rebuild's large batches (and back)."""
        return None  # nothing to tune by default

    async def grant_reader(
        self, conn: Connection, role: str, views: Sequence[str]
    ) -> ReaderGrant | None:
        """Let ``role`` read ``views`` alone, making it if need be (see
        :func:`projections.views.grant_reader`); None where the database has no roles."""
        return None

    @abc.abstractmethod
    async def lock_checkpoints(self, conn: Connection) -> dict[str, int]:
        """Every projection's checkpoint, locked until the caller's transaction ends."""
