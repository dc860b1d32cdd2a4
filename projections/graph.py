"""The relationship graph at a point (GET /relations): the edges of ``proj_edges`` that held
then. (The edges themselves are derived from states in :mod:`projections.relations`.)

Time semantics: :mod:`projections.points`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from eventstore import Connection, EventStore

from .dialect import ProjectionDialect, records
from .dialects import dialect_for
from .errors import NotFoundError
from .fold import decode_state
from .models import Edge, RelationGraph
from .points import Point, resolve_point, still_held


class EdgeSpan(msgspec.Struct, frozen=True, gc=False):
    """A ``proj_edges`` row as :func:`edges_at` reads it (times in the dialect's form)."""

    from_id: str
    rel: str
    to_id: str
    attrs: str
    since_time: Any
    until_time: Any


async def edges_at(
    dialect: ProjectionDialect, conn: Connection, point: Point, *, touching: str | None = None
) -> list[EdgeSpan]:
    """The edges that held at the point (only those from or to ``touching`` if given), in
    (from, rel, to, attrs) order."""
    sql = (
        "SELECT from_id, rel, to_id, attrs, since_time, until_time FROM proj_edges "
        "WHERE since_position <= ?"
    )
    args: list[Any] = [point.position]
    if point.time_bound is not None:
        sql += " AND since_time <= ?"
        args.append(point.time_bound)
    held, held_args = still_held(point, "until_position", "until_time")
    sql += held
    args += held_args
    if touching is not None:
        sql += " AND (from_id = ? OR to_id = ?)"
        args += [touching, touching]
    sql += " ORDER BY from_id, rel, to_id, attrs"
    return records(EdgeSpan, await conn.fetch(sql, args))


async def relations(
    store: EventStore,
    *,
    at: datetime | None = None,
    position: int | None = None,
    id: str | None = None,
) -> RelationGraph:
    """The relationship graph then: every edge that held, or only those touching ``id``."""
    dialect = dialect_for(store)
    async with store.read_connection() as conn:
        point = await resolve_point(dialect, conn, at, position)
        spans = await edges_at(dialect, conn, point, touching=id)
        if id is not None and not spans:
            known = await conn.fetchone(
                "SELECT 1 FROM proj_resources WHERE resource_id = ? UNION ALL "
                "SELECT 1 FROM proj_edges WHERE to_id = ?",
                (id, id),
            )
            if known is None:
                raise NotFoundError(f"no resource {id!r} has ever been seen")
    edges = [
        Edge(
            from_=span.from_id,
            rel=span.rel,
            to=span.to_id,
            attrs=decode_state(span.attrs),
            since=dialect.time_out(span.since_time),
            until=dialect.time_or_none(span.until_time),
        )
        for span in spans
    ]
    return RelationGraph(at=point.at, position=point.position, edges=edges)
