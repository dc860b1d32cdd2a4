"""The projections on SQLite: times are ``format_time`` TEXT, so they compare as strings."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from eventstore import format_time, parse_time

from .backend import Backend

_CREATE_TABLE = re.compile(r'^CREATE TABLE\s+"?(\w+)"?', re.IGNORECASE)
_CREATE_INDEX = re.compile(r'^CREATE (UNIQUE )?INDEX\s+"?(\w+)"?\s+ON\s+"?(\w+)"?', re.IGNORECASE)
_GENERATION = re.compile(r"__g[0-9a-f]{8}$")
BULK_CACHE_KIB = -262_144
"""PRAGMA cache_size during a rebuild (negative: KiB)."""


class SQLiteBackend(Backend):
    """aiosqlite connections; the store's writer runs every transaction in BEGIN IMMEDIATE."""

    dialect = "sqlite"

    def version_probe(self, where: str, order: str) -> str:
        # The probe's index holds each row's rowid: join on it directly rather than on the
        # (resource_id, valid_from_position) key, which costs a second index descent each.
        return (
            "JOIN proj_versions v ON v.rowid = "
            f"(SELECT x.rowid FROM proj_versions x WHERE {where} ORDER BY {order} LIMIT 1)"
        )

    def time_in(self, value: datetime) -> Any:
        return format_time(value)

    def time_out(self, value: Any) -> datetime:
        return parse_time(str(value))

    async def fetch(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        db: aiosqlite.Connection = conn
        async with db.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    async def execute(self, conn: Any, sql: str, args: Sequence[Any] = ()) -> None:
        db: aiosqlite.Connection = conn
        async with db.execute(sql, tuple(args)):
            pass

    async def executemany(self, conn: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        db: aiosqlite.Connection = conn
        await db.executemany(sql, rows)

    async def table_exists(self, conn: Any, name: str) -> bool:
        row = await self.fetchone(
            conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return row is not None

    async def create_like(self, conn: Any, table: str, shadow: str) -> list[str]:
        # SQLite has no CREATE TABLE ... LIKE: copy the DDL the migration wrote. Index names
        # are global, so the copies get a fresh generation suffix (kept through the rename).
        # Keys declared in the table's DDL come with it (the migration declares the big
        # tables' keys as unique indexes, so that they too are built after the load).
        rows = await self.fetch(
            conn,
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
            "ORDER BY type DESC",
            (table,),
        )
        generation = secrets.token_hex(4)
        later: list[str] = []
        for kind, ddl in rows:
            if kind == "table":
                await self.execute(conn, _CREATE_TABLE.sub(f"CREATE TABLE {shadow}", ddl, count=1))
            elif kind == "index":

                def rename(match: re.Match[str]) -> str:
                    base = _GENERATION.sub("", match.group(2))
                    unique = match.group(1) or ""
                    return f"CREATE {unique}INDEX {base}__g{generation} ON {shadow}"

                later.append(_CREATE_INDEX.sub(rename, ddl, count=1))
        return later

    async def bulk_mode(self, conn: Any, on: bool) -> None:
        # A rebuild's page cache (256 MiB instead of SQLite's 2 MiB) holds the B-trees it
        # builds; its index builds sort in memory rather than in temporary files. Neither
        # touches durability: journal and synchronous settings stay as the store set them.
        await self.execute(conn, f"PRAGMA cache_size = {BULK_CACHE_KIB if on else -2000}")
        await self.execute(conn, f"PRAGMA temp_store = {'MEMORY' if on else 'DEFAULT'}")

    async def lock_checkpoints(self, conn: Any) -> dict[str, int]:
        # BEGIN IMMEDIATE already holds the database's write lock.
        rows = await self.fetch(conn, "SELECT name, position FROM projection_checkpoints")
        return {name: int(position) for name, position in rows}
