"""Handlers over the event store and the running services: events, integrity, probes, resyncs.

Each handler parses, calls one function, renders; the read-side queries live in
:mod:`api.resources`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eventstore import RecordedEvent

from .app import SERVICES, Services
from .errors import BadParameterError, NotFoundError, UnprocessableError
from .models import (
    Alive,
    Check,
    ClusterState,
    EventOut,
    EventPage,
    Integrity,
    Readiness,
    ResyncAccepted,
    ResyncRequest,
    ResyncStatus,
)
from .openapi import CURSOR, LIMIT, POSITION, Operation, Param
from .params import parse_int, parse_limit

log = logging.getLogger("pvetrail.api")

MAX_LAG_SECONDS = 30.0
"""``/readyz`` answers 503 while the projections lag more than this."""

MAX_RESYNCS_KEPT = 1000


def render(value: Any, status: int = 200) -> web.Response:
    """A JSON answer encoded by msgspec (times in RFC 3339 UTC with ``Z``)."""
    return web.Response(
        body=msgspec.json.encode(value), status=status, content_type="application/json"
    )


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]


# -- probes --------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    """The process is up (no dependency is checked)."""
    return render(Alive())


async def readyz(request: web.Request) -> web.Response:
    """Database answers, migrations applied, projections within 30 s; clusters reported."""
    services = services_of(request)
    checks = {"migrations": await _migrations_check(services)}
    if checks["migrations"].ok:
        try:
            head = await asyncio.wait_for(services.store.head(), timeout=5)
            checks["database"] = Check(ok=True, head=head)
        except Exception as exc:  # any failure to answer is "not ready", never a 500
            checks["database"] = Check(ok=False, detail=f"{type(exc).__name__}: {exc}")
        if services.projections is not None and checks["database"].ok:
            checks["projections"] = await _projections_check(services)
    clusters = {
        name: msgspec.convert(health, ClusterState, from_attributes=True, strict=False)
        for name, health in _health(services).items()
    }
    ready = all(check.ok for check in checks.values())
    return render(Readiness(ready=ready, checks=checks, clusters=clusters), 200 if ready else 503)


async def _migrations_check(services: Services) -> Check:
    if services.migrations_current:  # applied migrations never become pending again
        return Check(ok=True)
    try:
        status = await asyncio.wait_for(services.store.pending_migrations(), timeout=5)
    except Exception as exc:  # the database does not answer
        return Check(ok=False, detail=f"database: {type(exc).__name__}: {exc}")
    if status.pending:
        return Check(ok=False, detail=f"{len(status.pending)} migration(s) pending")
    services.migrations_current = True
    return Check(ok=True)


async def _projections_check(services: Services) -> Check:
    assert services.projections is not None
    try:
        lag = msgspec.to_builtins(await services.projections.lag())
    except Exception as exc:
        return Check(ok=False, detail=f"{type(exc).__name__}: {exc}")
    seconds = float(lag.get("seconds") or 0.0)
    ok = seconds < MAX_LAG_SECONDS
    return Check(
        ok=ok,
        head=lag.get("head"),
        checkpoint=lag.get("checkpoint"),
        lag_seconds=round(seconds, 3),
        detail=None if ok else f"projections lag {seconds:.0f} s (limit {MAX_LAG_SECONDS:.0f} s)",
    )


def _health(services: Services) -> dict[str, Any]:
    if services.collectors is None:
        return {}
    return {name: msgspec.to_builtins(h) for name, h in services.collectors.health().items()}


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: HTTP, collector and projection figures."""
    services = services_of(request)
    if services.projections is not None:
        try:
            lag = msgspec.to_builtins(await services.projections.lag())
            services.metrics.services.lag = (
                int(lag.get("head") or 0),
                int(lag.get("checkpoint") or 0),
                float(lag.get("seconds") or 0.0),
            )
        except Exception:
            log.warning("projection lag unavailable for /metrics", exc_info=True)
            services.metrics.services.lag = None
    body = await asyncio.to_thread(generate_latest, services.metrics.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def openapi(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    body = services_of(request).openapi or b"{}"
    return web.Response(body=body, content_type="application/json")


# -- the log -------------------------------------------------------------------------------
def event_out(event: RecordedEvent) -> EventOut:
    """An event as the API shows it; the payload passes through as the JSON the log keeps."""
    return EventOut(
        position=event.position,
        stream_id=event.stream_id,
        version=event.version,
        type=event.type,
        schema_version=event.schema_version,
        observed_at=event.observed_at,
        observed_after=event.observed_after,
        recorded_at=event.recorded_at,
        actor=event.actor,
        correlation_id=event.correlation_id,
        data=msgspec.Raw(event.data),
        prev_hash=event.prev_hash,
        hash=event.hash,
    )


async def events(request: web.Request) -> web.Response:
    """The raw log in position order: events with ``position > after``."""
    query = request.query
    limit = parse_limit(query)
    if "cursor" in query and "after" in query:
        raise BadParameterError("cursor", "give either after or cursor, not both")
    if "cursor" in query:
        after = parse_int("cursor", query["cursor"])
    else:
        after = parse_int("after", query["after"]) if "after" in query else 0
    batch = await services_of(request).store.read_batch(after, limit + 1)
    items = [event_out(e) for e in batch[:limit]]
    more = len(batch) > limit
    return render(EventPage(items=items, next_cursor=str(items[-1].position) if more else None))


async def integrity(request: web.Request) -> web.Response:
    """Walk the hash chain: ``ok`` and where it breaks."""
    result = await services_of(request).store.verify()
    return render(
        Integrity(
            ok=result.ok,
            checked=result.checked,
            head=result.head,
            first_bad_position=result.first_bad_position,
            reason=result.reason,
        )
    )


# -- resyncs -------------------------------------------------------------------------------
async def create_resync(request: web.Request) -> web.Response:
    """Queue a poll of a cluster (or one node or guest) now; 202 with its id."""
    services = services_of(request)
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw, type=ResyncRequest)
    except msgspec.DecodeError as exc:
        raise BadParameterError("body", str(exc)) from None
    if body.cluster not in services.clusters or services.collectors is None:
        known = ", ".join(services.clusters) or "none configured"
        raise UnprocessableError(
            f"no cluster named {body.cluster!r} is collected (known: {known})", param="cluster"
        )
    resync_id = uuid.uuid4().hex
    status = ResyncStatus(id=resync_id, cluster=body.cluster, status="queued")
    services.resyncs[resync_id] = status
    while len(services.resyncs) > MAX_RESYNCS_KEPT:
        services.resyncs.pop(next(iter(services.resyncs)))
    task = asyncio.create_task(_run_resync(services, status, body))
    services.tasks.add(task)
    task.add_done_callback(services.tasks.discard)
    return render(ResyncAccepted(id=resync_id), 202)


async def _run_resync(services: Services, status: ResyncStatus, body: ResyncRequest) -> None:
    assert services.collectors is not None
    status.status = "running"
    try:
        result = await services.collectors.sync(
            body.cluster, deep=True, node=body.node, vmid=body.vmid
        )
    except asyncio.CancelledError:
        status.status = "failed"
        status.error = "cancelled: the server stopped"
        raise
    except Exception as exc:
        log.warning("resync %s failed: %s", status.id, exc)
        status.status = "failed"
        status.error = f"{type(exc).__name__}: {exc}"
        return
    status.events_appended = result.events_appended
    if result.ok:
        status.status = "done"
    else:
        # Nothing could be observed (Proxmox unreachable, say): the resync did not happen.
        status.status = "failed"
        status.error = "; ".join(result.faults) or "the poll observed nothing"


async def get_resync(request: web.Request) -> web.Response:
    """A resync's status."""
    resync_id = request.match_info["resync_id"]
    status = services_of(request).resyncs.get(resync_id)
    if status is None:
        raise NotFoundError(f"no resync {resync_id[:64]!r} (resyncs are kept in memory)")
    return render(status)


OPERATIONS = [
    Operation(
        method="GET",
        path="/api/v1/events",
        handler=events,
        operation_id="listEvents",
        summary="The raw event log in position order (events with position > after)",
        answer=EventPage,
        params=[
            Param(name="after", schema=POSITION, description="list events after this position"),
            Param(name="cursor", schema=CURSOR, description="next_cursor of the previous page"),
            Param(name="limit", schema=LIMIT, description="page size, 1 to 1000"),
        ],
        tag="log",
    ),
    Operation(
        method="GET",
        path="/api/v1/integrity",
        handler=integrity,
        operation_id="checkIntegrity",
        summary="Check the event log's hash chain",
        answer=Integrity,
        errors=(503,),
        tag="log",
    ),
    Operation(
        method="POST",
        path="/api/v1/resyncs",
        handler=create_resync,
        operation_id="createResync",
        summary="Poll a cluster (or one node or guest) now",
        answer=ResyncAccepted,
        body=ResyncRequest,
        status=202,
        errors=(400, 413, 422),
        tag="operate",
    ),
    Operation(
        method="GET",
        path="/api/v1/resyncs/{resync_id}",
        handler=get_resync,
        operation_id="getResync",
        summary="A resync's status",
        answer=ResyncStatus,
        params=[Param(name="resync_id", where="path", schema=CURSOR, description="its id")],
        errors=(404,),
        tag="operate",
    ),
    Operation(
        method="GET",
        path="/api/v1/openapi.json",
        handler=openapi,
        operation_id="getOpenApi",
        summary="This document",
        answer=None,
        errors=(),
        tag="meta",
    ),
    Operation(
        method="GET",
        path="/healthz",
        handler=healthz,
        operation_id="healthz",
        summary="The process is up",
        answer=Alive,
        errors=(),
        open=True,
        tag="meta",
    ),
    Operation(
        method="GET",
        path="/readyz",
        handler=readyz,
        operation_id="readyz",
        summary="Ready: database answers, migrations applied, projections within 30 s",
        answer=Readiness,
        errors=(),
        also=(503,),
        open=True,
        tag="meta",
    ),
    Operation(
        method="GET",
        path="/metrics",
        handler=metrics,
        operation_id="metrics",
        summary="Prometheus metrics",
        answer=str,
        answer_type="text/plain",
        errors=(),
        open=True,
        tag="meta",
    ),
]
