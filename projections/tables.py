"""Reading the log and writing a batch's rows: the SQL the runner and the rebuild share.

Statements are written once with ``?`` placeholders and ``{t}`` for the table, so a rebuild can
aim them at its shadow tables; :mod:`projections.dialect` turns them into each dialect and
runs the batch writes (its named operations, which a dialect may run set-based).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eventstore import Connection

from .dialect import ProjectionDialect
from .fold import (
    CONFIG_COLUMNS,
    EDGE_COLUMNS,
    RESOURCE_COLUMNS,
    VERSION_COLUMNS,
    BatchOutput,
    RawEvent,
    Tracked,
    resource_row,
    tracked_from_row,
)

READ_EVENTS = (
    "SELECT position, stream_id, type, schema_version, observed_at, observed_after, data "
    "FROM events WHERE position > ? AND position <= ? ORDER BY position LIMIT ?"
)
HEAD = "SELECT COALESCE(MAX(position), 0) FROM events"
RECORDED_AT = "SELECT recorded_at FROM events WHERE position = ?"

LOAD_RESOURCES = "SELECT " + RESOURCE_COLUMNS + " FROM {t} WHERE resource_id IN ({marks})"
READ_CHECKPOINTS = "SELECT name, position FROM projection_checkpoints"
SET_CHECKPOINT = "UPDATE projection_checkpoints SET position = ? WHERE name = ?"

_LOAD_CHUNK = 500


def _names(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",")]


_VERSION_NAMES = _names(VERSION_COLUMNS)
_CONFIG_NAMES = _names(CONFIG_COLUMNS)
_EDGE_NAMES = _names(EDGE_COLUMNS)


async def read_events(
    dialect: ProjectionDialect, conn: Connection, after: int, until: int, limit: int
) -> list[RawEvent]:
    """Up to ``limit`` events in ``(after, until]``, in position order."""
    # Positions are gap-free, so the next ``limit`` events lie in (after, after + limit]:
    # saying so bounds the read by the batch, whatever the planner knows. (PostgreSQL without
    # statistics on the log, e.g. autovacuum off, planned "position > after" as a bitmap scan
    # and sort of the whole rest of the log for each batch: 0.9 s against 0.06 s per 50,000
    # events at position 100,000 of 1M.)
    bound = min(until, after + limit)
    rows = await conn.fetch(READ_EVENTS, (after, bound, limit))
    if not rows and bound < until:  # a gap after all: read on to ``until``
        rows = await conn.fetch(READ_EVENTS, (after, until, limit))
    return [RawEvent(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows]


async def head(dialect: ProjectionDialect, conn: Connection) -> int:
    """The log's head position."""
    row = await conn.fetchone(HEAD)
    return int(row[0]) if row else 0


async def load_tracked(
    dialect: ProjectionDialect,
    conn: Connection,
    table: str,
    ids: Sequence[str],
    into: dict[str, Tracked],
) -> None:
    """Load the named resources' rows into ``into`` (ids that have none are new)."""
    for start in range(0, len(ids), _LOAD_CHUNK):
        chunk = ids[start : start + _LOAD_CHUNK]
        sql = LOAD_RESOURCES.format(t=table, marks=",".join("?" * len(chunk)))
        for row in await conn.fetch(sql, chunk):
            tracked = tracked_from_row(row)
            into[tracked.resource_id] = tracked


async def write_batch(
    dialect: ProjectionDialect, conn: Connection, out: BatchOutput, tables: Mapping[str, str]
) -> None:
    """Write a batch's rows; ``tables`` maps each table to write (by its name in the
    migration) to the table that receives its rows (itself, or a rebuild's shadow)."""
    if "proj_resources" in tables:
        rows = [resource_row(t) for t in out.resources.values()]
        await dialect.upsert_resources(conn, tables["proj_resources"], rows)
    if "proj_versions" in tables:
        t = tables["proj_versions"]
        await dialect.close_versions(conn, t, out.version_closes)
        inserts = list(out.version_inserts.values())
        await conn.insert_many(t, _VERSION_NAMES, inserts)
        await conn.insert_many(tables["proj_configs"], _CONFIG_NAMES, out.config_inserts)
    if "proj_edges" in tables:
        t = tables["proj_edges"]
        # Closes first: the open-edge unique index allows one open row per edge.
        await dialect.close_edges(conn, t, out.edge_closes)
        await conn.insert_many(t, _EDGE_NAMES, out.edge_inserts)


async def set_checkpoints(
    dialect: ProjectionDialect, conn: Connection, names: Sequence[str], position: int
) -> None:
    """Advance the named checkpoints (inside the transaction that wrote the rows)."""
    await conn.executemany(SET_CHECKPOINT, [(position, name) for name in names])
