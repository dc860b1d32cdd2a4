"""The aiohttp application: its factory, its lifecycle and the services it composes.

:func:`create_app` wires one event store, the optional collector service and projection runner,
the authenticator and the metrics into an app whose routes come from the declared operations
(:mod:`api.handlers`, :mod:`api.resources`). When the app starts it starts the projection runner
and then the collectors; when it stops it stops them in the reverse order, so a ``serve``
process that receives SIGTERM finishes or rolls back its in-flight polls before closing the
store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import msgspec
from aiohttp import web

from eventstore import EventStore

from .auth import Authenticator, Token
from .errors import BadParameterError
from .metrics import Metrics
from .middleware import MAX_BODY, make_middleware
from .openapi import Handler, Operation, document

log = logging.getLogger("pvetrail.api")


class CollectorsPort(Protocol):
    """What the app needs of ``collectors.service.CollectorService``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def sync(
        self, cluster: str, *, deep: bool = False, node: str | None = None, vmid: int | None = None
    ) -> Any: ...

    def health(self) -> Mapping[str, Any]: ...


class ProjectionsPort(Protocol):
    """What the app needs of ``projections.runner.ProjectionRunner``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def lag(self) -> Any: ...


@dataclass
class Services:
    """Everything a handler may use, kept on the app under :data:`SERVICES`."""

    store: EventStore
    auth: Authenticator
    metrics: Metrics
    collectors: CollectorsPort | None = None
    projections: ProjectionsPort | None = None
    clusters: Sequence[str] = ()
    resyncs: dict[str, Any] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    migrations_current: bool = False
    openapi: bytes | None = None


SERVICES = web.AppKey("services", Services)


def package_version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a bare checkout)."""
    try:
        return version("pvetrail")
    except PackageNotFoundError:  # pragma: no cover - always installed in practice
        return "0+unknown"


def operations() -> list[Operation]:
    """Every operation the app serves, in document order."""
    from . import handlers, resources

    return [*resources.OPERATIONS, *handlers.OPERATIONS]


def create_app(
    store: EventStore,
    *,
    tokens: Sequence[Token] = (),
    collectors: CollectorsPort | None = None,
    projections: ProjectionsPort | None = None,
    clusters: Sequence[str] = (),
) -> web.Application:
    """The app over ``store``; it starts and stops ``projections`` and ``collectors`` with itself.

    The store itself belongs to the caller, who closes it after the app has stopped.
    """
    auth = Authenticator(tokens)
    metrics = Metrics(_health_source(collectors))
    services = Services(
        store=store,
        auth=auth,
        metrics=metrics,
        collectors=collectors,
        projections=projections,
        clusters=list(clusters),
    )
    app = web.Application(
        middlewares=[make_middleware(auth, metrics)],
        client_max_size=MAX_BODY,
        handler_args={
            "access_log": None,  # the middleware logs each request, with its id
            # Room for a 1024-character id percent-encoded in full plus its query, so that an
            # over-long id still gets our problem+json 400 rather than the parser's plain one.
            "max_line_size": 64 * 1024,
        },
    )
    app[SERVICES] = services
    ops = operations()
    for op in ops:
        if op.routed:
            app.router.add_route(op.method, op.path, checked(op))
    from .resources import add_dispatch_routes

    add_dispatch_routes(app.router)
    services.openapi = msgspec.json.encode(document(ops, version=package_version()))
    app.cleanup_ctx.append(_lifecycle)
    return app


def checked(op: Operation) -> Handler:
    """The operation's handler, refusing query parameters it does not declare (a typo such as
    ``?sinse=`` would otherwise be ignored silently) and parameters given twice."""
    allowed = frozenset(p.name for p in op.params if p.where == "query")

    async def handler(request: web.Request) -> web.StreamResponse:
        check_query(request, allowed)
        return await op.handler(request)

    return handler


def check_query(request: web.Request, allowed: frozenset[str]) -> None:
    """400 naming the first unknown or repeated query parameter."""
    seen: set[str] = set()
    for name, _ in request.query.items():  # items(): a repeated name comes once per use
        if name not in allowed:
            shown = name if len(name) <= 40 else name[:37] + "..."
            known = ", ".join(sorted(allowed)) or "none"
            raise BadParameterError(shown, f"unknown query parameter (this route takes: {known})")
        if name in seen:
            raise BadParameterError(name, "given more than once")
        seen.add(name)


def _health_source(collectors: CollectorsPort | None) -> Any:
    if collectors is None:
        return None

    def health() -> dict[str, Mapping[str, Any]]:
        return {name: msgspec.to_builtins(value) for name, value in collectors.health().items()}

    return health


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    started: list[Any] = []
    try:
        for service in (services.projections, services.collectors):
            if service is not None:
                await service.start()
                started.append(service)
        yield
    finally:
        for task in list(services.tasks):
            task.cancel()
        if services.tasks:
            await asyncio.gather(*services.tasks, return_exceptions=True)
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)


async def run_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving ``app`` on ``host:port`` (port 0: one the system picks); returns the runner.

    The socket is bound first, so an address in use fails before the app starts its services
    (collectors and projection runner are never started only to be stopped at once).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site listens on."""
    for address in runner.addresses:
        with contextlib.suppress(TypeError, IndexError):
            return int(address[1])
    raise RuntimeError("the server listens on no TCP address")
