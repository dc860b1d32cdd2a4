"""The net change of the inventory between two times (GET /changes): each resource whose state
at ``until`` differs from its state at ``since``.

Both ends are points at the same position (the projections' checkpoint when the first page
was asked; see :mod:`projections.points`); a change counts in the window ``(since, until]``
by its effective time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventstore import EventStore, format_time, parse_time, utcnow

from .cursors import check_limit, cursor_key, make_cursor, read_cursor
from .dialects import dialect_for
from .diff import diff_states, initial_changes
from .errors import InvalidParameterError, UnprocessableError
from .models import ChangesPage, NetChange
from .points import Point, check_past, read_checkpoint
from .versions import Version, state_of, versions_at

# "(resource_id || '') > ?" keeps SQLite's planner on the time index (a plain comparison
# makes it walk the (resource_id, ...) index: the whole history) and means the same on both.
_CANDIDATES = (
    "SELECT resource_id FROM proj_versions WHERE valid_from_time > ? AND valid_from_time <= ? "
    "AND valid_from_position <= ? AND (resource_id || '') > ?{type} "
    "UNION "
    "SELECT resource_id FROM proj_versions WHERE ended_by_removal = 1 "
    "AND valid_to_time > ? AND valid_to_time <= ? "
    "AND valid_to_position <= ? AND (resource_id || '') > ?{type} "
    "ORDER BY resource_id LIMIT ?"
)


async def changes(
    store: EventStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    type: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> ChangesPage:
    """The net change of the inventory between ``since`` and ``until`` (default now): each
    resource whose state at ``until`` differs from its state at ``since``.

    Candidates come from the versions table's time indexes (versions that began or ended in
    the window), so the cost follows the number of changes in the window, not the history.
    """
    check_limit(limit)
    dialect = dialect_for(store)
    key = await cursor_key(store)
    query: dict[str, Any] = {
        "since": None if since is None else format_time(since),
        "until": None if until is None else format_time(until),
        "type": type,
    }
    after = ""
    async with store.read_connection() as conn:
        if cursor is not None:
            query, (p, after) = read_cursor(key, cursor, "chg", query, (int, str))
            since, until = parse_time(query["since"]), parse_time(query["until"])
            type = query["type"]
        else:
            if since is None:
                raise InvalidParameterError("since is required (an RFC 3339 time)", param="since")
            now = utcnow()
            check_past(since, "since", now)
            check_past(until, "until", now)
            until = until or now
            if since > until:
                raise UnprocessableError("since is after until", param="until")
            p = await read_checkpoint(dialect, conn)
            # A first page without until answers up to now: later pages keep that end.
            query["until"] = format_time(until)
        assert since is not None
        assert until is not None
        start = Point.of_time(dialect, since, p)
        end = Point.of_time(dialect, until, p)
        items: list[NetChange] = []
        more = False
        while len(items) < limit:
            type_sql = " AND (type || '') = ?" if type is not None else ""
            args: list[Any] = []
            for _ in range(2):
                args += [start.time_bound, end.time_bound, p, after]
                args += [type] if type is not None else []
            args.append(limit)
            found = await conn.fetch(_CANDIDATES.format(type=type_sql), args)
            ids = [row[0] for row in found]
            if not ids:
                break
            before = {v.resource_id: v for v in await versions_at(dialect, conn, start, ids=ids)}
            later = {v.resource_id: v for v in await versions_at(dialect, conn, end, ids=ids)}
            for index, rid in enumerate(ids):
                change = net_change(rid, before.get(rid), later.get(rid))
                after = rid
                if change is not None:
                    items.append(change)
                    if len(items) == limit:
                        more = index < len(ids) - 1 or len(ids) == limit
                        break
            if len(ids) < limit:
                break
    next_cursor = make_cursor(key, "chg", query, p, after) if more else None
    return ChangesPage(since=since, until=until, items=items, next_cursor=next_cursor)


def net_change(rid: str, before: Version | None, later: Version | None) -> NetChange | None:
    """How a resource differs between its versions at two points (None: it does not)."""
    if before is None and later is None:
        return None  # created and removed within the window
    if before is None:
        assert later is not None
        return NetChange(id=rid, change="created", changes=initial_changes(state_of(later)))
    if later is None:
        return NetChange(id=rid, change="removed", changes=[])
    old = state_of(before)
    diff = [c for c in diff_states(old, state_of(later)) if not _learned(c.field, old)]
    return NetChange(id=rid, change="changed", changes=diff) if diff else None


def _learned(field: str, old: dict[str, Any]) -> bool:
    """Whether the earlier state lacked the field (discovered while its node was offline,
    see ``collectors.events.Learned``): its first value is learned, not a change."""
    unknown = old.get("unknown") or ()
    return (
        field == "unknown"
        or field in unknown
        or (field.startswith("config.") and "config" in unknown)
    )
