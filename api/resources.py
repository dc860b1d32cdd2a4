"""The read-side endpoints: inventory, one resource, its history, changes and relations.

Each handler parses the raw request strings (a malformed one is a 400 naming it), calls one
query of :mod:`projections.queries` and renders its msgspec answer; the queries judge what
the values mean (a time in the future is their 422, an unknown resource their 404).

Resource ids travel in the path one segment per part (``/resources/lab/qemu/100``) or as one
percent-encoded segment (``/resources/lab%2Fqemu%2F100``); one catch-all route takes both and
:func:`api.params.split_resource_path` tells the id from a trailing sub-resource.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from projections import queries
from projections.models import ChangesPage, HistoryPage, InventoryPage, RelationGraph, Resource

from .app import SERVICES, check_query
from .errors import BadParameterError, NotFoundError
from .handlers import render
from .middleware import ROUTE
from .openapi import CURSOR, LIMIT, POSITION, TEXT, TIME, Operation, Param
from .params import (
    at_or_position,
    check_resource_id,
    optional_text,
    optional_time,
    parse_limit,
    split_resource_path,
)

PREFIX = "/api/v1/resources/"
RESOURCE_ID = web.RequestKey("resource_id", str)

AT = Param(name="at", schema=TIME, description="answer as of this time (RFC 3339; default now)")
AT_POSITION = Param(
    name="position", schema=POSITION, description="answer as of this log position (not with at)"
)
PAGE = [
    Param(name="cursor", schema=CURSOR, description="next_cursor of the previous page"),
    Param(name="limit", schema=LIMIT, description="page size, 1 to 1000 (default 100)"),
]
ID_IN_PATH = Param(
    name="id",
    where="path",
    schema={"type": "string", "minLength": 1, "maxLength": 1024},
    description="resource id, percent-encoded as one segment: lab%2Fqemu%2F100 "
    "(lab/qemu/100 as several segments works too)",
)


def _cursor(query: web.Request) -> str | None:
    return optional_text(query.query, "cursor")


async def inventory(request: web.Request) -> web.Response:
    """The inventory as it was at a time or position (default now), filtered, paged by id."""
    query = request.query
    at, position = at_or_position(query)
    page = await queries.inventory(
        request.app[SERVICES].store,
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
        request.app[SERVICES].store, request[RESOURCE_ID], at=at, position=position
    )
    return render(found)


async def history(request: web.Request) -> web.Response:
    """A resource's changes, oldest first."""
    query = request.query
    page = await queries.history(
        request.app[SERVICES].store,
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
        request.app[SERVICES].store,
        # With a cursor the window is the cursor's own; since is then not read.
        since=since or datetime.min.replace(tzinfo=UTC),
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
        request.app[SERVICES].store, at=at, position=position, id=resource_id
    )
    return render(graph)


async def rollback_targets(request: web.Request) -> web.Response:
    """Not served by this version (rollback planning is a later issue)."""
    raise NotFoundError("rollback targets are not available in this version of pvetrail")


OPERATIONS = [
    Operation(
        method="GET",
        path="/api/v1/resources",
        handler=inventory,
        operation_id="listResources",
        summary="The inventory as it was at a time (default now)",
        answer=InventoryPage,
        params=[
            AT,
            AT_POSITION,
            Param(name="type", schema=TEXT, description="qemu, lxc, node, storage, ..."),
            Param(name="node", schema=TEXT, description="node name"),
            Param(name="status", schema=TEXT, description="running, stopped, ..."),
            Param(name="tag", schema=TEXT, description="one tag"),
            Param(name="pool", schema=TEXT, description="pool name"),
            Param(name="q", schema=TEXT, description="substring of the id or name"),
            *PAGE,
        ],
        errors=(400, 422, 503),
    ),
    Operation(
        method="GET",
        path="/api/v1/resources/{id}",
        handler=resource,
        operation_id="getResource",
        summary="One resource as it was then; 404 with first_seen/last_seen if not then",
        answer=Resource,
        params=[ID_IN_PATH, AT, AT_POSITION],
        errors=(400, 404, 422, 503),
        routed=False,
    ),
    Operation(
        method="GET",
        path="/api/v1/resources/{id}/history",
        handler=history,
        operation_id="getResourceHistory",
        summary="A resource's changes, oldest first, with actor and window",
        answer=HistoryPage,
        params=[
            ID_IN_PATH,
            Param(name="since", schema=TIME, description="changes observed after this time"),
            Param(name="until", schema=TIME, description="changes observed up to this time"),
            *PAGE,
        ],
        errors=(400, 404, 422, 503),
        routed=False,
    ),
    Operation(
        method="GET",
        path="/api/v1/changes",
        handler=changes,
        operation_id="listChanges",
        summary="Net change of the whole inventory between two times",
        answer=ChangesPage,
        params=[
            Param(
                name="since",
                schema=TIME,
                description="start of the window, exclusive (required unless cursor)",
            ),
            Param(name="until", schema=TIME, description="end of the window (default now)"),
            Param(name="type", schema=TEXT, description="only resources of this type"),
            *PAGE,
        ],
        errors=(400, 422, 503),
    ),
    Operation(
        method="GET",
        path="/api/v1/relations",
        handler=relations,
        operation_id="getRelations",
        summary="The relationship graph as it was then",
        answer=RelationGraph,
        params=[
            AT,
            AT_POSITION,
            Param(
                name="id",
                schema={"type": "string", "minLength": 1, "maxLength": 1024},
                description="only edges touching this resource",
            ),
        ],
        errors=(400, 422, 503),
    ),
]

_BY_SUB = {
    None: OPERATIONS[1],
    "history": OPERATIONS[2],
}
_ALLOWED = {
    sub: frozenset(p.name for p in op.params if p.where == "query") for sub, op in _BY_SUB.items()
}


async def resource_dispatch(request: web.Request) -> web.StreamResponse:
    """``/resources/{id}``, ``/resources/{id}/history`` and ``/resources/{id}/rollback-targets``."""
    raw = request.rel_url.raw_path[len(PREFIX) :]
    resource_id, sub = split_resource_path(raw)
    request[ROUTE] = f"/api/v1/resources/{{id}}{'/' + sub if sub else ''}"
    request[RESOURCE_ID] = resource_id
    if sub == "rollback-targets":
        return await rollback_targets(request)
    check_query(request, _ALLOWED[sub])
    return await _BY_SUB[sub].handler(request)


def add_dispatch_routes(router: web.UrlDispatcher) -> None:
    """The catch-all route behind every ``/resources/{id}...`` operation."""
    router.add_get(PREFIX + "{tail:.+}", resource_dispatch)
