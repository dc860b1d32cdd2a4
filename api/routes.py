"""Every operation the app serves, in one list: the router and the OpenAPI document both come
from :data:`OPERATIONS`.

Each :class:`~api.openapi.Operation` names its handler (in :mod:`api.resources` or
:mod:`api.handlers`), its parameters, its answer type and its error statuses. Every route
refuses query parameters its operation does not declare. The ``/resources/{id}...``
operations share one catch-all route (an id is several path segments, or one encoded one),
which :func:`resource_dispatch` sends on by the sub-resource the path ends in.
"""

from __future__ import annotations

from aiohttp import web

from projections.drift import DesiredDocument, DesiredSet, DesiredSetList, DriftPage
from projections.drift.desired import SET_NAME_PATTERN
from projections.models import ChangesPage, HistoryPage, InventoryPage, RelationGraph, Resource
from projections.rollback import PlanRequest, RollbackPlan, RollbackTargets

from . import drift, handlers, resources, webhooks, webview
from .middleware import ROUTE
from .models import (
    Alive,
    EventPage,
    Integrity,
    Readiness,
    ResyncAccepted,
    ResyncRequest,
    ResyncStatus,
)
from .openapi import CURSOR, LIMIT, POSITION, TEXT, TIME, Handler, Operation, Param
from .params import check_query, split_resource_path
from .readers import RESOURCE_ID

RESOURCES_PREFIX = "/api/v1/resources/"

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

# -- the read side -------------------------------------------------------------------------
LIST_RESOURCES = Operation(
    method="GET",
    path="/api/v1/resources",
    read=resources.inventory,
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
)
GET_RESOURCE = Operation(
    method="GET",
    path="/api/v1/resources/{id}",
    read=resources.resource,
    operation_id="getResource",
    summary="One resource as it was then; 404 with first_seen/last_seen if not then",
    answer=Resource,
    params=[ID_IN_PATH, AT, AT_POSITION],
    errors=(400, 404, 422, 503),
    routed=False,
)
GET_RESOURCE_HISTORY = Operation(
    method="GET",
    path="/api/v1/resources/{id}/history",
    read=resources.history,
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
)
LIST_CHANGES = Operation(
    method="GET",
    path="/api/v1/changes",
    read=resources.changes,
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
)
GET_RELATIONS = Operation(
    method="GET",
    path="/api/v1/relations",
    read=resources.relations,
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
)


# -- rollback ------------------------------------------------------------------------------
GET_ROLLBACK_TARGETS = Operation(
    method="GET",
    path="/api/v1/resources/{id}/rollback-targets",
    read=resources.rollback_targets,
    operation_id="getRollbackTargets",
    summary="The points a guest can be taken back to (past configurations, snapshots, "
    "backups), newest first; 422 for a resource that is no guest",
    answer=RollbackTargets,
    params=[ID_IN_PATH],
    errors=(400, 404, 422, 503),
    routed=False,
    tag="rollback",
)
CREATE_ROLLBACK_PLAN = Operation(
    method="POST",
    path="/api/v1/rollback-plans",
    read=resources.rollback_plan,
    operation_id="createRollbackPlan",
    summary="The Proxmox VE calls that would take a guest back to a time, position, snapshot "
    "or backup; changes nothing (open to readers)",
    answer=RollbackPlan,
    body=PlanRequest,
    errors=(400, 404, 413, 422, 503),
    tag="rollback",
)


# -- drift ---------------------------------------------------------------------------------
SET_NAME = Param(
    name="name",
    where="path",
    schema={"type": "string", "pattern": SET_NAME_PATTERN},
    description="the desired set's name (letters, digits, '.', '_', '-'; up to 128)",
)
GET_DRIFT = Operation(
    method="GET",
    path="/api/v1/drift",
    read=drift.report,
    operation_id="getDrift",
    summary="What differs from a baseline time or a desired set, since when and by whom",
    answer=DriftPage,
    params=[
        Param(
            name="baseline",
            schema=TIME,
            description="compare with the inventory at this time (or give desired)",
        ),
        Param(
            name="desired",
            schema={"type": "string", "pattern": SET_NAME_PATTERN},
            description="compare with this desired set (or give baseline)",
        ),
        Param(
            name="unmanaged",
            schema={"type": "string", "enum": ["true", "false"]},
            description="with desired: also list the guests no spec covers",
        ),
        *PAGE,
    ],
    errors=(400, 404, 422, 503),
    tag="drift",
)
LIST_DESIRED = Operation(
    method="GET",
    path="/api/v1/desired",
    read=drift.list_desired,
    operation_id="listDesiredSets",
    summary="The desired-state sets: stored ones and those of desired_dir",
    answer=DesiredSetList,
    errors=(503,),
    tag="drift",
)
GET_DESIRED = Operation(
    method="GET",
    path="/api/v1/desired/{name}",
    handler=drift.get_desired,
    operation_id="getDesiredSet",
    summary="One desired-state set with its document",
    answer=DesiredSet,
    params=[SET_NAME],
    errors=(400, 404, 422, 503),
    tag="drift",
)
PUT_DESIRED = Operation(
    method="PUT",
    path="/api/v1/desired/{name}",
    handler=drift.put_desired,
    operation_id="putDesiredSet",
    summary="Store a desired-state set (JSON, or YAML as application/yaml); a bad one "
    "changes nothing: 400 naming the line, 422 naming the field",
    answer=DesiredSet,
    params=[SET_NAME],
    body=DesiredDocument,
    body_types=drift.BODY_TYPES,
    errors=(400, 413, 415, 422, 503),
    tag="drift",
)

# -- the log, resyncs and the process ------------------------------------------------------
LIST_EVENTS = Operation(
    method="GET",
    path="/api/v1/events",
    handler=handlers.events,
    operation_id="listEvents",
    summary="The raw event log in position order (events with position > after)",
    answer=EventPage,
    params=[
        Param(name="after", schema=POSITION, description="list events after this position"),
        Param(name="cursor", schema=CURSOR, description="next_cursor of the previous page"),
        Param(name="limit", schema=LIMIT, description="page size, 1 to 1000"),
    ],
    tag="log",
)
CHECK_INTEGRITY = Operation(
    method="GET",
    path="/api/v1/integrity",
    handler=handlers.integrity,
    operation_id="checkIntegrity",
    summary="Check the event log's whole hash chain (walked off the event loop, shared by "
    "concurrent requests, kept until the head moves or a minute passes)",
    answer=Integrity,
    errors=(503,),
    tag="log",
)
CREATE_RESYNC = Operation(
    method="POST",
    path="/api/v1/resyncs",
    handler=handlers.create_resync,
    operation_id="createResync",
    summary="Poll a cluster (or one node or guest) now: queued in the database, run by the "
    "process that collects the cluster; a request for a scope already queued joins it (same "
    "id); 503 with Retry-After while the cluster's queue is full",
    answer=ResyncAccepted,
    body=ResyncRequest,
    status=202,
    errors=(400, 413, 422, 503),
    tag="operate",
)
GET_RESYNC = Operation(
    method="GET",
    path="/api/v1/resyncs/{resync_id}",
    handler=handlers.get_resync,
    operation_id="getResync",
    summary="A resync's status (from any process on the database, also after a restart)",
    answer=ResyncStatus,
    params=[Param(name="resync_id", where="path", schema=CURSOR, description="its id")],
    errors=(404, 503),
    tag="operate",
)
PVE_HOOK = Operation(
    method="POST",
    path="/api/v1/hooks/pve",
    handler=webhooks.pve_hook,
    operation_id="pveHook",
    summary="A Proxmox VE notification webhook (docs/webhooks.md): no bearer token, the shared "
    "secret in X-Pvetrail-Secret; queues the resync the notification calls for (a backup: its "
    "node; anything else: the cluster, deep) through the resync queue; 404 while no "
    "api.webhook_secret_env is configured",
    answer=webhooks.HookAccepted,
    params=[
        Param(
            name="cluster",
            schema=TEXT,
            description="the cluster (default: the one with a node named fields.hostname, or "
            "the only one)",
        )
    ],
    body=webhooks.Notification,
    status=202,
    errors=(400, 401, 404, 413, 422, 503),
    open=True,
    tag="operate",
)
GET_OPENAPI = Operation(
    method="GET",
    path="/api/v1/openapi.json",
    handler=handlers.openapi,
    operation_id="getOpenApi",
    summary="This document",
    answer=None,
    errors=(),
    tag="meta",
)
HEALTHZ = Operation(
    method="GET",
    path="/healthz",
    handler=handlers.healthz,
    operation_id="healthz",
    summary="The process is up",
    answer=Alive,
    errors=(),
    open=True,
    tag="meta",
)
READYZ = Operation(
    method="GET",
    path="/readyz",
    handler=handlers.readyz,
    operation_id="readyz",
    summary="Ready: database answers, migrations applied, projections within 30 s",
    answer=Readiness,
    errors=(),
    also=(503,),
    open=True,
    tag="meta",
)
METRICS = Operation(
    method="GET",
    path="/metrics",
    handler=handlers.metrics,
    operation_id="metrics",
    summary="Prometheus metrics",
    answer=str,
    answer_type="text/plain",
    errors=(),
    open=True,
    tag="meta",
)

OPERATIONS: tuple[Operation, ...] = (
    LIST_RESOURCES,
    GET_RESOURCE,
    GET_RESOURCE_HISTORY,
    LIST_CHANGES,
    GET_RELATIONS,
    GET_ROLLBACK_TARGETS,
    CREATE_ROLLBACK_PLAN,
    GET_DRIFT,
    LIST_DESIRED,
    GET_DESIRED,
    PUT_DESIRED,
    LIST_EVENTS,
    CHECK_INTEGRITY,
    CREATE_RESYNC,
    GET_RESYNC,
    PVE_HOOK,
    GET_OPENAPI,
    HEALTHZ,
    READYZ,
    METRICS,
)
"""Every operation, in the OpenAPI document's order."""


WEB_VIEW: tuple[tuple[str, Handler], ...] = (
    ("/", webview.index),
    ("/ui/{name}", webview.static),
)
"""The web view's page and static files: no API operations (not in the OpenAPI document),
open without a token (``api.auth.is_open``)."""


def add_routes(router: web.UrlDispatcher) -> None:
    """Route every operation: each routed one on its own path, the resource ones on the
    ``/resources/{id}...`` catch-all; then the web view."""
    for op in OPERATIONS:
        if op.routed:
            router.add_route(op.method, op.path, checked(op))
    router.add_get(RESOURCES_PREFIX + "{tail:.+}", resource_dispatch)
    for path, handler in WEB_VIEW:
        router.add_get(path, handler)


def checked(op: Operation) -> Handler:
    """The operation's handler, refusing query parameters it does not declare (a typo such as
    ``?sinse=`` would otherwise be ignored silently) and parameters given twice."""
    allowed = op.query_names()
    serve = op.serve()

    async def handler(request: web.Request) -> web.StreamResponse:
        check_query(request.query.items(), allowed)
        return await serve(request)

    return handler


_BY_SUB_RESOURCE: dict[str | None, Handler] = {
    None: checked(GET_RESOURCE),
    "history": checked(GET_RESOURCE_HISTORY),
    "rollback-targets": checked(GET_ROLLBACK_TARGETS),
}


async def resource_dispatch(request: web.Request) -> web.StreamResponse:
    """``/resources/{id}``, ``/resources/{id}/history`` and ``/resources/{id}/rollback-targets``."""
    raw = request.rel_url.raw_path[len(RESOURCES_PREFIX) :]
    resource_id, sub = split_resource_path(raw)
    request[ROUTE] = f"/api/v1/resources/{{id}}{'/' + sub if sub else ''}"
    request[RESOURCE_ID] = resource_id
    return await _BY_SUB_RESOURCE[sub](request)
