"""Handlers over the event store and the running services: probes, events, integrity, resyncs.

Each handler parses, calls one function, renders; the read-side handlers live in
:mod:`api.resources`, and :mod:`api.routes` says which path each one serves.
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eventstore import RecordedEvent

from .errors import BadParameterError
from .health import projection_lag, readiness
from .middleware import TOKEN
from .models import Alive, EventOut, EventPage, Integrity, ResyncAccepted, ResyncRequest
from .params import parse_int, parse_limit
from .responses import render
from .services import services_of


# -- probes --------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    """The process is up (no dependency is checked)."""
    return render(Alive())


async def readyz(request: web.Request) -> web.Response:
    """Database answers, migrations applied, projections within 30 s; clusters reported."""
    ready = await readiness(services_of(request))
    return render(ready, 200 if ready.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: HTTP, collector and projection figures."""
    services = services_of(request)
    if services.projections is not None:
        services.metrics.services.lag = await projection_lag(services.projections)
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
    """The whole hash chain's check: ``ok`` and where it breaks, and when it was walked."""
    checked = await services_of(request).integrity.check()
    result = checked.result
    return render(
        Integrity(
            ok=result.ok,
            checked=result.checked,
            head=result.head,
            first_bad_position=result.first_bad_position,
            reason=result.reason,
            checked_at=checked.checked_at,
        )
    )


# -- resyncs -------------------------------------------------------------------------------
async def create_resync(request: web.Request) -> web.Response:
    """Queue a poll of a cluster (or one node or guest) now; 202 with its id."""
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw, type=ResyncRequest)
    except msgspec.DecodeError as exc:
        raise BadParameterError("body", str(exc)) from None
    token = request.get(TOKEN)
    resync_id = await services_of(request).resyncs.start(
        body, requested_by="anonymous" if token is None else token.name
    )
    return render(ResyncAccepted(id=resync_id), 202)


async def get_resync(request: web.Request) -> web.Response:
    """A resync's status, from the queue in the database."""
    return render(await services_of(request).resyncs.status(request.match_info["resync_id"]))
