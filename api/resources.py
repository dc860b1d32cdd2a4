"""The read-side endpoints: inventory, one resource, its history, changes, relations, and
rollback targets and plans.

Each handler parses the raw request strings (a malformed one is a 400 naming it), calls one
query of :mod:`projections.queries` and renders its msgspec answer; the queries judge what
the values mean (a time in the future is their 422, an unknown resource their 404).

Each is a reader (:mod:`api.readers`): it takes the question's raw strings, so the HTTP API
(through :func:`api.readers.serving`) and ``pvetrail mcp`` ask it alike. Resource ids travel
in the path one segment per part (``/resources/lab/qemu/100``) or as one percent-encoded
segment (``/resources/lab%2Fqemu%2F100``); the catch-all route of :mod:`api.routes` takes both
and hands the id over as ``Asked.resource_id``.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from projections import queries, rollback
from projections.models import ChangesPage, HistoryPage, InventoryPage, RelationGraph, Resource

from .errors import BadParameterError
from .params import (
    MAX_CURSOR,
    at_or_position,
    check_resource_id,
    check_text,
    optional_text,
    optional_time,
    parse_limit,
)
from .readers import Asked, ReadSide


def _cursor(query: Mapping[str, str]) -> str | None:
    cursor = query.get("cursor")
    if cursor is not None:
        check_text("cursor", cursor, MAX_CURSOR)
    return cursor


async def inventory(side: ReadSide, asked: Asked) -> InventoryPage:
    """The inventory as it was at a time or position (default now), filtered, paged by id."""
    query = asked.query
    at, position = at_or_position(query)
    return await queries.inventory(
        side.store,
        at=at,
        position=position,
        type=optional_text(query, "type"),
        node=optional_text(query, "node"),
        status=optional_text(query, "status"),
        tag=optional_text(query, "tag"),
        pool=optional_text(query, "pool"),
        q=optional_text(query, "q"),
        limit=parse_limit(query),
        cursor=_cursor(query),
    )


async def resource(side: ReadSide, asked: Asked) -> Resource:
    """One resource as it was then."""
    at, position = at_or_position(asked.query)
    return await queries.resource_at(side.store, asked.resource_id, at=at, position=position)


async def history(side: ReadSide, asked: Asked) -> HistoryPage:
    """A resource's changes, oldest first."""
    query = asked.query
    return await queries.history(
        side.store,
        asked.resource_id,
        since=optional_time(query, "since"),
        until=optional_time(query, "until"),
        limit=parse_limit(query),
        cursor=_cursor(query),
    )


async def changes(side: ReadSide, asked: Asked) -> ChangesPage:
    """The net change of the whole inventory between two times."""
    query = asked.query
    since = optional_time(query, "since")
    cursor = _cursor(query)
    if since is None and cursor is None:
        raise BadParameterError("since", "is required (an RFC 3339 time)")
    return await queries.changes(
        side.store,
        since=since,  # with a cursor: the cursor's own window (a different since is a 400)
        until=optional_time(query, "until"),
        type=optional_text(query, "type"),
        limit=parse_limit(query),
        cursor=cursor,
    )


async def relations(side: ReadSide, asked: Asked) -> RelationGraph:
    """The relationship graph then, or the edges touching one resource."""
    query = asked.query
    at, position = at_or_position(query)
    resource_id = query.get("id")
    if resource_id is not None:
        check_resource_id("id", resource_id)
    return await queries.relations(side.store, at=at, position=position, id=resource_id)


async def rollback_targets(side: ReadSide, asked: Asked) -> rollback.RollbackTargets:
    """The points a guest can be taken back to, newest first."""
    return await rollback.rollback_targets(side.store, asked.resource_id)


async def rollback_plan(side: ReadSide, asked: Asked) -> rollback.RollbackPlan:
    """The Proxmox VE calls that would take a guest back to a target (nothing is run)."""
    try:
        body = msgspec.json.decode(asked.body, type=rollback.PlanRequest)
    except msgspec.DecodeError as exc:
        raise BadParameterError("body", str(exc)) from None
    check_resource_id("resource", body.resource)
    return await rollback.plan_rollback(side.store, body)
