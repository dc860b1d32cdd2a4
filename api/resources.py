"""The read-side endpoints: inventory, one resource, its history, changes and relations.

Resource ids travel in the path one segment per part (``/resources/lab/qemu/100``) or as one
percent-encoded segment (``/resources/lab%2Fqemu%2F100``); one catch-all route takes both and
:func:`api.params.split_resource_path` tells the id from a trailing sub-resource.
"""

from __future__ import annotations

from aiohttp import web

from .errors import NotFoundError
from .middleware import ROUTE
from .openapi import Operation
from .params import split_resource_path

PREFIX = "/api/v1/resources/"


async def resource_dispatch(request: web.Request) -> web.StreamResponse:
    """``/resources/{id}``, ``/resources/{id}/history`` and ``/resources/{id}/rollback-targets``."""
    raw = request.rel_url.raw_path[len(PREFIX) :]
    resource_id, sub = split_resource_path(raw)
    request[ROUTE] = f"/api/v1/resources/{{id}}{'/' + sub if sub else ''}"
    raise NotFoundError(f"no resource {resource_id!r}")


def add_dispatch_routes(router: web.UrlDispatcher) -> None:
    """The catch-all route behind every ``/resources/{id}...`` operation."""
    router.add_get(PREFIX + "{tail:.+}", resource_dispatch)


OPERATIONS: list[Operation] = []
