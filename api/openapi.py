"""The OpenAPI 3.1 document, generated from the operations the app serves and their msgspec types.

Each handler is declared once as an :class:`Operation` naming its parameters, its answer type
and its error statuses; the router and this document are both built from that one list, and
the schemas come from ``msgspec.json.schema_components`` over the very types the handlers
encode, so the document cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import msgspec
from aiohttp import web

from .models import Problem
from .readers import Reader, serving

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TIME = {"type": "string", "format": "date-time"}
POSITION = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
TEXT = {"type": "string", "minLength": 1, "maxLength": 512}
CURSOR = {"type": "string", "minLength": 1, "maxLength": 8192}
"""A cursor carries its whole query (the longest id and every filter fit)."""

_REASONS = {
    400: "a malformed parameter or body (the problem names it)",
    401: "no bearer token, or an unknown one",
    403: "the token's role may not do this",
    404: "no such resource",
    409: "a conflict",
    413: "the request body is over 1 MiB",
    415: "the body's Content-Type is not one the operation takes",
    422: "well-formed but impossible (e.g. a time in the future)",
    503: "the database does not answer",
}


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """A query or path parameter."""

    name: str
    schema: dict[str, Any]
    description: str
    where: Literal["query", "path"] = "query"
    required: bool = False


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    """One method and path: what the router serves and the document describes."""

    method: Literal["GET", "POST", "PUT"]
    path: str
    summary: str
    answer: Any
    operation_id: str
    params: Sequence[Param] = ()
    body: Any = None
    body_types: Sequence[str] = ("application/json",)  # the media types the body may come as
    status: int = 200
    errors: Sequence[int] = (400, 401, 503)
    open: bool = False  # needs no token
    answer_type: str = "application/json"
    tag: str = "read"
    also: Sequence[int] = ()  # more statuses that answer with the same type (503 of /readyz)
    routed: bool = True  # False: served by a dispatcher route (the resource-id catch-all)
    handler: Handler | None = None
    read: Reader | None = None
    """The read side's question behind the operation (:mod:`api.readers`): served over HTTP
    when no ``handler`` is given, and asked by other front ends too (``pvetrail mcp``)."""

    def serve(self) -> Handler:
        """The HTTP handler: ``handler``, or the reader served."""
        if self.handler is not None:
            return self.handler
        if self.read is None:
            raise TypeError(f"operation {self.operation_id} has neither handler nor read")
        return serving(self.read)

    def query_names(self) -> frozenset[str]:
        """The names of its query parameters (any other is refused)."""
        return frozenset(p.name for p in self.params if p.where == "query")


def document(operations: Sequence[Operation], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing ``operations``."""
    types: list[Any] = [Problem]
    for op in operations:
        if op.answer is not None:
            types.append(op.answer)
        if op.body is not None:
            types.append(op.body)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    refs = dict(zip((id(t) for t in types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in op.params
            ],
            "responses": _responses(op, refs),
        }
        if op.open:
            entry["security"] = []
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {kind: {"schema": refs[id(op.body)]} for kind in op.body_types},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pvetrail",
            "version": version,
            "description": "Time-travel queries over an event-sourced record of Proxmox VE: "
            "what did it look like, what changed, who did it.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _responses(op: Operation, refs: dict[int, Any]) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": refs[id(Problem)]}}
    answer: dict[str, Any] = {"description": "the answer"}
    if op.answer is not None:
        if op.answer_type == "application/json":
            answer["content"] = {"application/json": {"schema": refs[id(op.answer)]}}
        else:
            answer["content"] = {op.answer_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): answer}
    for status in op.also:
        responses[str(status)] = {**answer, "description": "not ready (see the checks)"}
    errors = set(op.errors)
    if not op.open:
        errors |= {401, 403}
    if op.body is not None:
        errors |= {400, 413}
    for status in sorted(errors):
        responses[str(status)] = {"description": _REASONS[status], "content": problem}
    return responses
