"""One SQL for every table beside the log: a connection that hides the dialect.

The store's companions (projection tables, the collectors' observations, settings, and the
tables that later features add) write each statement once, with ``?`` placeholders, and pass
times as aware datetimes through :meth:`Connection.time_in` / :meth:`Connection.time_out`.
``sqlite.py`` and ``postgres.py`` implement it beside their stores; what still differs
between the dialects (DDL, set-based bulk statements) is the caller's own dialect module's
business, reached through :attr:`Connection.raw` only there.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from .envelope import format_time, parse_time

Dialect = Literal["sqlite", "postgresql"]

Row = Sequence[Any]
"""A result row: indexes like a tuple (SQLite's tuples, asyncpg's records)."""


class Connection(abc.ABC):
    """A database connection of the store, speaking the one SQL of its companions."""

    dialect: Dialect

    @property
    @abc.abstractmethod
    def raw(self) -> Any:
        """The driver's own connection, for a dialect module's dialect-specific statements."""

    # -- statements ----------------------------------------------------------------------
    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query written with ``?`` placeholders."""

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        rows = await self.fetch(sql, args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = await self.fetchone(sql, args)
        return None if row is None else row[0]

    @abc.abstractmethod
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run one statement."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row."""

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows (values in ``columns`` order); a dialect may take a faster path."""
        if rows:
            marks = ",".join("?" * len(columns))
            await self.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
            )

    @abc.abstractmethod
    async def table_exists(self, name: str) -> bool:
        """Whether a table of that name is visible on this connection."""

    # -- values --------------------------------------------------------------------------
    def time_in(self, value: datetime) -> Any:
        """A time as this dialect stores and compares it."""
        return time_in(self.dialect, value)

    def time_out(self, value: Any) -> datetime:
        """A stored time as an aware UTC datetime."""
        return time_out(self.dialect, value)

    def time_or_none(self, value: Any) -> datetime | None:
        """:meth:`time_out`, passing None through."""
        return None if value is None else time_out(self.dialect, value)


def time_in(dialect: Dialect, value: datetime) -> Any:
    """A time as ``dialect`` stores it: ``format_time`` TEXT on SQLite (so that times compare
    as strings), TIMESTAMPTZ on PostgreSQL."""
    return format_time(value) if dialect == "sqlite" else value


def time_out(dialect: Dialect, value: Any) -> datetime:
    """A time ``dialect`` stored, as an aware UTC datetime."""
    if dialect == "sqlite":
        return parse_time(str(value))
    result: datetime = value
    return result.astimezone(UTC)
