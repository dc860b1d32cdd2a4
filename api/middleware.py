"""The one middleware every request passes: request id, body limit, auth, problem+json, access log.

Every error becomes an RFC 9457 problem with the status the error carries: our
:class:`~api.errors.ApiError`, aiohttp's own HTTP exceptions (unknown route, wrong method, body
too large), and the read side's :class:`~projections.errors.QueryError`. Only a bug gives a
500, and it is logged with the request id.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from eventstore import DatabaseUnavailableError, EventStoreError
from projections.errors import QueryError

from .auth import Authenticator, Token, is_open
from .errors import ApiError
from .metrics import Metrics
from .models import Problem

MAX_BODY = 1024 * 1024
"""Request bodies over 1 MiB get 413."""

REQUEST_ID = web.RequestKey("request_id", str)
TOKEN = web.RequestKey("token", Token)
"""The token a request authenticated with (absent when the API is open)."""
ROUTE = web.RequestKey("route", str)
"""The metrics and log label of a request, when its handler knows better than the router."""

# Request ids: a random per-process prefix and a counter. Unique enough to correlate a request
# with its log lines, and far cheaper than uuid4 (os.urandom costs ~50 us a call on some VMs).
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

log = logging.getLogger("pvetrail.api")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    request_id: str | None = None,
    param: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Problem:
    """An RFC 9457 problem body."""
    extra = extra or {}
    return Problem(
        type="about:blank",
        title=title,
        status=status,
        detail=detail,
        param=param,
        request_id=request_id,
        first_seen=_time_or_none(extra.get("first_seen")),
        last_seen=_time_or_none(extra.get("last_seen")),
    )


def problem_response(body: Problem, headers: dict[str, str] | None = None) -> web.Response:
    """An ``application/problem+json`` answer."""
    return web.Response(
        body=msgspec.json.encode(body),
        status=body.status,
        content_type="application/problem+json",
        headers=headers,
    )


def refusal(exc: Exception, request_id: str | None = None) -> Problem | None:
    """The problem a refusal stands for: our :class:`ApiError`, the read side's
    :class:`QueryError`, an unreachable database (503); None for anything else (a bug)."""
    if isinstance(exc, ApiError | QueryError):
        # The read side's errors know their status and the parameter at fault too.
        extra = (
            exc.extra
            if isinstance(exc, ApiError)
            else {
                "first_seen": getattr(exc, "first_seen", None),
                "last_seen": getattr(exc, "last_seen", None),
            }
        )
        return problem(
            exc.status, exc.title, exc.detail, request_id=request_id, param=exc.param, extra=extra
        )
    if isinstance(exc, DatabaseUnavailableError):
        return problem(
            503, "Service Unavailable", "the database does not answer", request_id=request_id
        )
    return None


def _time_or_none(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


JSON_BODIES = frozenset({"application/json"})
"""What every POST and PUT takes (a cross-site form can send none of these without CORS)."""
YAML_BODIES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
"""What desired sets also take."""
ANY_BODY_PATHS = frozenset({"/api/v1/hooks/pve"})
"""Routes that check a secret instead, and take a body of any type (Proxmox's webhook)."""
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _body_types(path: str) -> frozenset[str] | None:
    """The content types a POST or PUT to ``path`` takes (None: any)."""
    if path in ANY_BODY_PATHS:
        return None
    if path.startswith("/api/v1/desired/"):
        return JSON_BODIES | YAML_BODIES
    return JSON_BODIES


def host_name(header: str) -> str:
    """The name part of a ``Host`` header (no port, no IPv6 brackets), lower case."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _check_host(request: web.Request, hosts: frozenset[str]) -> None:
    name = host_name(request.headers.get("Host", ""))
    if name not in hosts:
        raise ApiError(
            f"this API serves anyone on its own address and so answers only requests for it "
            f"({', '.join(sorted(hosts))}), not for {name or 'no Host'!r}: add the name to "
            "api.allowed_hosts, or configure API tokens",
            status=403,
            title="Forbidden",
        )


def _check_body_type(request: web.Request) -> None:
    if request.method not in ("POST", "PUT"):
        return
    allowed = _body_types(request.path)
    if allowed is None or request.content_type in allowed:
        return
    given = request.headers.get("Content-Type")
    raise ApiError(
        f"{request.method} {request.path} takes Content-Type "
        f"{' or '.join(sorted(allowed))}, not {given or 'none'}",
        status=415,
        title="Unsupported Media Type",
    )


def make_middleware(
    auth: Authenticator, metrics: Metrics, *, hosts: frozenset[str] | None = None
) -> Any:
    """The middleware, closed over the app's authenticator and metrics.

    ``hosts``: the only ``Host`` names answered (an API without tokens, so that a page whose
    DNS name was rebound to this address cannot read it); None answers any.
    """

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        given = request.headers.get("X-Request-Id", "")
        request_id = (
            given if _SAFE_REQUEST_ID.fullmatch(given) else f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        )
        request[REQUEST_ID] = request_id
        token: Token | None = None
        try:
            length = request.content_length
            if length is not None and length > MAX_BODY:
                raise ApiError(
                    f"request bodies are limited to {MAX_BODY} bytes",
                    status=413,
                    title="Content Too Large",
                )
            if hosts is not None:
                _check_host(request, hosts)
            _check_body_type(request)
            if not is_open(request.path):
                token = auth.identify(request.headers.get("Authorization"))
                auth.authorize(token, request.method, request.path)
                if token is not None:
                    request[TOKEN] = token
            response = await handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            response = _render(exc, request_id)
        response.headers["X-Request-Id"] = request_id
        route = request.get(ROUTE) or _route_of(request)
        elapsed = time.perf_counter() - started
        metrics.observe(route, request.method, response.status, elapsed)
        log.info(
            "%s %s %d",
            request.method,
            route,
            response.status,
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 2),
                "token": token.name if token else None,
                "remote": request.remote,
            },
        )
        return response

    return middleware


def _route_of(request: web.Request) -> str:
    """The route's template (``/api/v1/events``): a label of bounded cardinality."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def _refused(
    exc: Exception, request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = refusal(exc, request_id)
    assert body is not None
    return problem_response(body, headers)


def _render(exc: Exception, request_id: str) -> web.Response:
    if isinstance(exc, ApiError):
        if exc.status >= 500:
            log.error("%s", exc.detail, extra={"request_id": request_id})
        # RFC 6750: a 401 names the scheme the client should use.
        headers = (
            {**exc.headers, "WWW-Authenticate": 'Bearer realm="pvetrail"'}
            if exc.status == 401
            else exc.headers
        )
        return _refused(exc, request_id, headers)
    if isinstance(exc, web.HTTPException):
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            detail = f"request bodies are limited to {MAX_BODY} bytes"
        body = problem(exc.status, exc.reason, detail, request_id=request_id)
        return problem_response(body, headers)
    if isinstance(exc, QueryError):
        return _refused(exc, request_id)
    if isinstance(exc, DatabaseUnavailableError):
        log.error("database unavailable: %s", exc, extra={"request_id": request_id})
        return _refused(exc, request_id)
    if isinstance(exc, EventStoreError):
        log.exception("event store error", extra={"request_id": request_id})
        return problem_response(
            problem(503, "Service Unavailable", "the event store failed", request_id=request_id)
        )
    log.exception("unhandled error", extra={"request_id": request_id})
    return problem_response(
        problem(
            500,
            "Internal Server Error",
            f"an unexpected error; the log has it under request id {request_id}",
            request_id=request_id,
        )
    )
