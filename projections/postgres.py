"""The projections on PostgreSQL: ``$n`` placeholders, TIMESTAMPTZ times, row locks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from .backend import Backend


class PostgresBackend(Backend):
    """asyncpg connections from the store's pool."""

    dialect = "postgresql"

    def _convert(self, text: str) -> str:
        # '?' never appears inside the projections' string literals, so a plain scan is enough.
        parts = text.split("?")
        out = [parts[0]]
        for number, part in enumerate(parts[1:], start=1):
            out.append(f"${number}{part}")
        return "".join(out)

    def time_in(self, value: datetime) -> Any:
        return value

    def time_out(self, value: Any) -> datetime:
        result: datetime = value
        return result.astimezone(UTC)

    async def fetch(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        db: asyncpg.Connection = conn
        return list(await db.fetch(self.sql(sql), *args))

    async def execute(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> None:
        db: asyncpg.Connection = conn
        await db.execute(self.sql(sql), *args)

    async def executemany(self, conn: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        db: asyncpg.Connection = conn
        batch = list(rows)
        if batch:
            await db.executemany(self.sql(sql), batch)

    async def table_exists(self, conn: Any, name: str) -> bool:
        db: asyncpg.Connection = conn
        return bool(await db.fetchval("SELECT to_regclass($1) IS NOT NULL", name))

    async def create_like(self, conn: Any, table: str, shadow: str) -> None:
        # LIKE ... INCLUDING ALL copies keys and indexes, choosing index names that are free.
        await self.execute(conn, f"CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)")

    async def lock_checkpoints(self, conn: Any) -> dict[str, int]:
        # FOR UPDATE orders the runner and a rebuild's swap: the later one sees the new value.
        rows = await self.fetch(
            conn, "SELECT name, position FROM projection_checkpoints ORDER BY name FOR UPDATE"
        )
        return {name: int(position) for name, position in rows}
