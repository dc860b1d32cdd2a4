"""The inventory at a point, and one resource at a point (GET /resources, /resources/{id}).

Time semantics: :mod:`projections.points`. Every page of one listing answers at the point
its first page resolved to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from eventstore import Connection, EventStore, format_time

from .cursors import check_limit, cursor_key, make_cursor, read_cursor
from .dialect import ProjectionDialect
from .dialects import dialect_for
from .errors import NotFoundError
from .models import InventoryPage, Resource
from .points import cursor_times, point_from_cursor, resolve_point
from .states import resource_of, state_at
from .versions import Filters, has_observations, versions_at

_NONE = type(None)


async def inventory(
    store: EventStore,
    *,
    at: datetime | None = None,
    position: int | None = None,
    type: str | None = None,
    node: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    pool: str | None = None,
    q: str | None = None,
    limit: int | None = 100,
    cursor: str | None = None,
    include_removed: bool = False,
) -> InventoryPage:
    """The inventory as it was at ``at`` or ``position`` (default: now), filtered, by id.

    Each resource costs one index probe into the versions table, whatever the length of its
    history; on PostgreSQL the whole inventory at a time (``limit=None``: every resource in
    one page, for callers in this process) or a filtered page of it is one index scan.
    Filters apply to the state at that time: ``tag`` is one tag, ``q`` a case-insensitive
    substring of the id or name. ``include_removed`` adds the resources removed by then, with
    their last state and ``removed`` true.
    """
    if limit is not None:
        check_limit(limit)
    dialect = dialect_for(store)
    key = await cursor_key(store)
    query: dict[str, Any] = {
        "at": None if at is None else format_time(at),
        "position": position,
        "type": type,
        "node": node,
        "status": status,
        "tag": tag,
        "pool": pool,
        "q": q,
        "include_removed": include_removed or None,
    }
    async with store.read_connection() as conn:
        after: str | None = None
        if cursor is not None:
            optional = (str, _NONE)
            query, (p, bound, at_text, after) = read_cursor(
                key, cursor, "inv", query, (int, optional, optional, str)
            )
            point = point_from_cursor(dialect, p, bound, at_text)
            type, node, status = query["type"], query["node"], query["status"]
            tag, pool, q = query["tag"], query["pool"], query["q"]
            include_removed = bool(query["include_removed"])
        else:
            point = await resolve_point(dialect, conn, at, position)
        filters = Filters(type, node, status, tag, pool, q)
        found = await versions_at(
            dialect,
            conn,
            point,
            after=after,
            filters=filters,
            limit=limit + 1 if limit is not None else None,
            include_removed=include_removed,
        )
    items = [resource_of(dialect, version, point) for version in found[:limit]]
    next_cursor = None
    if limit is not None and len(found) > limit:
        bound_text, at_text = cursor_times(point, dialect)
        next_cursor = make_cursor(
            key, "inv", query, point.position, bound_text, at_text, items[-1].id
        )
    return InventoryPage(at=point.at, position=point.position, items=items, next_cursor=next_cursor)


class _Lifespan(msgspec.Struct, frozen=True, gc=False):
    """When a resource was seen, for the answer that it did not exist at a point."""

    first_seen: Any
    last_seen: Any
    removed: int
    changed_at: Any
    last_observed_at: Any

    def last(self) -> Any:
        """Removed: the last observation that showed it. Still there: its latest
        observation (the collectors' table), else its last change."""
        if self.removed:
            return self.last_seen
        return self.last_observed_at if self.last_observed_at is not None else self.changed_at


async def _lifespan(
    dialect: ProjectionDialect, conn: Connection, resource_id: str
) -> _Lifespan | None:
    observed = await has_observations(dialect, conn)
    row = await conn.fetchone(
        "SELECT r.first_seen, r.last_seen, r.removed, r.observed_at, "
        + ("o.last_observed_at" if observed else "NULL")
        + " FROM proj_resources r"
        + (" LEFT JOIN observations o ON o.resource_id = r.resource_id" if observed else "")
        + " WHERE r.resource_id = ?",
        (resource_id,),
    )
    return _Lifespan(*row) if row is not None else None


async def resource_at(
    store: EventStore,
    resource_id: str,
    *,
    at: datetime | None = None,
    position: int | None = None,
) -> Resource:
    """One resource as it was then; :class:`NotFoundError` (with ``first_seen`` and
    ``last_seen`` when it existed at other times) if it did not exist then."""
    dialect = dialect_for(store)
    # A few indexed reads of one resource: the dialect's cheapest way to run them.
    async with store.short_reads() as conn:
        point = await resolve_point(dialect, conn, at, position)
        found = await state_at(dialect, conn, resource_id, point)
        if found is not None:
            return found
        lifespan = await _lifespan(dialect, conn, resource_id)
    if lifespan is None:
        raise NotFoundError(f"no resource {resource_id!r} has ever been seen")
    when = format_time(point.at) if point.at is not None else f"position {point.position}"
    raise NotFoundError(
        f"resource {resource_id!r} did not exist at {when}",
        first_seen=dialect.time_out(lifespan.first_seen),
        last_seen=dialect.time_or_none(lifespan.last()),
    )
