"""The read-side endpoints: inventory, one resource, its history, changes and relations.

Each handler parses the raw request strings (a malformed one is a 400 naming it), calls one
query of :mod:`projections.queries` and renders its msgspec answer; the queries judge what
the values mean (a time in the future is their 422, an unknown resource their 404).

Resource ids travel in the path one segment per part (``/resources/lab/qemu/100``) or as one
percent-encoded segment (``/resources/lab%2Fqemu%2F100``); the catch-all route of
:mod:`api.routes` takes both and hands the id over as ``request[RESOURCE_ID]``.
"""

from __future__ import annotations

from aiohttp import web

from projections import queries

from .errors import BadParameterError, NotFoundError
from .params import (
    MAX_CURSOR,
    at_or_position,
    check_resource_id,
    check_text,
    optional_text,
    optional_time,
    parse_limit,
)
from .responses import render
from .services import services_of

RESOURCE_ID = web.RequestKey("resource_id", str)
"""The resource id the ``/resources/{id}...`` route found in the path (see :mod:`api.routes`)."""


def _cursor(request: web.Request) -> str | None:
    cursor = request.query.get("cursor")
    if cursor is not None:
        check_text("cursor", cursor, MAX_CURSOR)
    return cursor


async def inventory(request: web.Request) -> web.Response:
    """The inventory as it was at a time or position (default now), filtered, paged by id."""
    query = request.query
    at, position = at_or_position(query)
    page = await queries.inventory(
        services_of(request).store,
        at=at,
        position=position,
        type=optional_text(query, "type"),
        node=optional_text(query, "node"),
        status=optional_text(query, "status"),
        tag=optional_text(query, "tag"),
        pool=optional_text(query, "pool"),
        q=optional_text(query, "q"),
        limit=parse_limit(query),
        cursor=_cursor(request),
    )
    return render(page)


async def resource(request: web.Request) -> web.Response:
    """One resource as it was then."""
    at, position = at_or_position(request.query)
    found = await queries.resource_at(
        services_of(request).store, request[RESOURCE_ID], at=at, position=position
    )
    return render(found)


async def history(request: web.Request) -> web.Response:
    """A resource's changes, oldest first."""
    query = request.query
    page = await queries.history(
        services_of(request).store,
        request[RESOURCE_ID],
        since=optional_time(query, "since"),
        until=optional_time(query, "until"),
        limit=parse_limit(query),
        cursor=_cursor(request),
    )
    return render(page)


async def changes(request: web.Request) -> web.Response:
    """The net change of the whole inventory between two times."""
    query = request.query
    since = optional_time(query, "since")
    cursor = _cursor(request)
    if since is None and cursor is None:
        raise BadParameterError("since", "is required (an RFC 3339 time)")
    page = await queries.changes(
        services_of(request).store,
        since=since,  # with a cursor: the cursor's own window (a different since is a 400)
        until=optional_time(query, "until"),
        type=optional_text(query, "type"),
        limit=parse_limit(query),
        cursor=cursor,
    )
    return render(page)


async def relations(request: web.Request) -> web.Response:
    """The relationship graph then, or the edges touching one resource."""
    query = request.query
    at, position = at_or_position(query)
    resource_id = query.get("id")
    if resource_id is not None:
        check_resource_id("id", resource_id)
    graph = await queries.relations(
        services_of(request).store, at=at, position=position, id=resource_id
    )
    return render(graph)


async def rollback_targets(request: web.Request) -> web.Response:
    """Not served by this version (rollback planning is a later issue)."""
    raise NotFoundError("rollback targets are not available in this version of pvetrail")
