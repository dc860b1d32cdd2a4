"""The projections on SQLite: times are ``format_time`` TEXT, so they compare as strings."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

from eventstore import Connection

from .dialect import ProjectionDialect

_CREATE_TABLE = re.compile(r'^CREATE TABLE\s+"?(\w+)"?', re.IGNORECASE)
_CREATE_INDEX = re.compile(r'^CREATE (UNIQUE )?INDEX\s+"?(\w+)"?\s+ON\s+"?(\w+)"?', re.IGNORECASE)
_VIEWS = (
    "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND (type = 'view' OR "
    "(type = 'trigger' AND tbl_name IN (SELECT name FROM sqlite_master WHERE type = 'view'))) "
    "ORDER BY type = 'trigger', rowid"
)
_GENERATION = re.compile(r"__g[0-9a-f]{8}$")
BULK_CACHE_KIB = -262_144
"""PRAGMA cache_size during a rebuild (negative: KiB)."""
_BULK_SETTINGS = {"cache_size": BULK_CACHE_KIB, "secure_delete": 0}
"""What :meth:`SQLiteDialect.bulk_mode` sets on the writer for a rebuild."""


class SQLiteDialect(ProjectionDialect):
    """aiosqlite connections; the store's writer runs every transaction in BEGIN IMMEDIATE."""

    name = "sqlite"
    _settings: dict[str, Any] = {}  # replaced by bulk_mode, never changed in place
    """The writer's settings before a rebuild changed them (see :meth:`bulk_mode`)."""

    def version_probe(self, where: str, order: str) -> str:
        # The probe's index holds each row's rowid: join on it directly rather than on the
        # (resource_id, valid_from_position) key, which costs a second index descent each.
        return (
            "JOIN proj_versions v ON v.rowid = "
            f"(SELECT x.rowid FROM proj_versions x WHERE {where} ORDER BY {order} LIMIT 1)"
        )

    async def create_like(self, conn: Connection, table: str, shadow: str) -> list[str]:
        # SQLite has no CREATE TABLE ... LIKE: copy the DDL the migration wrote. Index names
        # are global, so the copies get a fresh generation suffix (kept through the rename).
        # Keys declared in the table's DDL come with it (the migration declares the big
        # tables' keys as unique indexes, so that they too are built after the load).
        rows = await conn.fetch(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
            "ORDER BY type DESC",
            (table,),
        )
        generation = secrets.token_hex(4)
        later: list[str] = []
        for kind, ddl in rows:
            if kind == "table":
                await conn.execute(_CREATE_TABLE.sub(f"CREATE TABLE {shadow}", ddl, count=1))
            elif kind == "index":

                def rename(match: re.Match[str]) -> str:
                    base = _GENERATION.sub("", match.group(2))
                    unique = match.group(1) or ""
                    return f"CREATE {unique}INDEX {base}__g{generation} ON {shadow}"

                later.append(_CREATE_INDEX.sub(rename, ddl, count=1))
        return later

    async def bulk_mode(self, conn: Connection, on: bool) -> None:
        # A rebuild's page cache (256 MiB instead of the store's) holds the B-trees it
        # builds. Builds of SQLite with SECURE_DELETE on (Debian's) overwrite every page a
        # DROP frees with zeros: the swap then wrote the old tables out once more (into the
        # WAL, then the checkpoint), 1.1-1.4 s against 0.25 s per DROP of 1M versions and
        # their edges. The tables a rebuild drops hold only what the log keeps forever
        # anyway (secrets never reach it), so zeroing them protects nothing. Durability is
        # untouched (journal and synchronous stay as the store set them), and each setting
        # is given back afterwards. (temp_store = MEMORY, tried for the index builds' sorts,
        # made them slower: 5.8-5.9 s against 3.7-4.4 s at 1M, and cannot be set back inside
        # a transaction.)
        if on:
            self._settings = {
                name: (await conn.fetch(f"PRAGMA {name}"))[0][0] for name in _BULK_SETTINGS
            }
            for name, value in _BULK_SETTINGS.items():
                await conn.execute(f"PRAGMA {name} = {value}")
        else:
            for name, value in self._settings.items():
                await conn.execute(f"PRAGMA {name} = {int(value)}")

    async def drop_views(self, conn: Connection, tables: Sequence[str]) -> list[str]:
        # Every view (which ones read the tables only SQLite's parser knows), in the order
        # they were made, with the triggers on them (dropped with a view); recreated from
        # the text sqlite_master keeps.
        rows = await conn.fetch(_VIEWS)
        for kind, name, _ in rows:
            if kind == "view":
                await conn.execute(f'DROP VIEW "{name}"')
        return [sql for _, _, sql in rows]

    async def lock_checkpoints(self, conn: Connection) -> dict[str, int]:
        # BEGIN IMMEDIATE already holds the database's write lock.
        rows = await conn.fetch("SELECT name, position FROM projection_checkpoints")
        return {name: int(position) for name, position in rows}
