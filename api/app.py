"""The aiohttp application: its factory, its lifecycle and the services it composes.

:func:`create_app` wires one event store, the optional collector service and projection runner,
the authenticator and the metrics into the request-time :class:`~api.services.Services`, and
builds the router and the OpenAPI document from the operations :mod:`api.routes` lists. When
the app starts it starts the projection runner and then the collectors; when it stops it
stops them in the reverse order, so a ``serve`` process that receives SIGTERM finishes or rolls
back its in-flight polls and resyncs (a resync cut short goes back to the queue) before closing
the store.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
from aiohttp import web

from eventstore import EventStore

from .auth import Authenticator, Token
from .health import cluster_health
from .metrics import Metrics
from .middleware import MAX_BODY, make_middleware
from .openapi import document
from .ports import CollectorsPort, ProjectionsPort
from .resyncs import Resyncs
from .routes import OPERATIONS, add_routes
from .services import SERVICES, Services

log = logging.getLogger("pvetrail.api")


def package_version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a bare checkout)."""
    try:
        return version("pvetrail")
    except PackageNotFoundError:  # pragma: no cover - always installed in practice
        return "0+unknown"


MAX_REQUEST_LINE = 256 * 1024
"""The longest request line the server reads (see ``create_app``)."""


def create_app(
    store: EventStore,
    *,
    tokens: Sequence[Token] = (),
    collectors: CollectorsPort | None = None,
    projections: ProjectionsPort | None = None,
    clusters: Sequence[str] = (),
    desired_dir: str | None = None,
    drift_ignore: Sequence[str] = (),
    hosts: Sequence[str] | None = None,
    webhook_secret: bytes | None = None,
) -> web.Application:
    """The app over ``store``; it starts and stops ``projections`` and ``collectors`` with itself.

    ``hosts``: the only ``Host`` names it answers (None: any); ``serve`` gives the listen
    address, the loopback names and ``api.allowed_hosts`` when no token is configured.
    ``webhook_secret``: what ``POST /hooks/pve`` checks (None: that route answers 404).

    The store itself belongs to the caller, who closes it after the app has stopped.
    """
    auth = Authenticator(tokens)
    metrics = Metrics(None if collectors is None else partial(cluster_health, collectors))
    services = Services(
        store=store,
        auth=auth,
        metrics=metrics,
        resyncs=Resyncs(store, clusters),
        collectors=collectors,
        projections=projections,
        webhook_secret=webhook_secret,
        desired_dir=desired_dir,
        drift_ignore=tuple(drift_ignore),
    )
    app = web.Application(
        middlewares=[
            make_middleware(
                auth,
                metrics,
                hosts=None if hosts is None else frozenset(h.lower() for h in hosts),
            )
        ],
        client_max_size=MAX_BODY,
        handler_args={
            "access_log": None,  # the middleware logs each request, with its id
            # Room for every parameter at (and somewhat past) its documented maximum, each
            # character percent-encoded as 4 UTF-8 bytes (12 characters): an id of 1,024, a
            # cursor of 8,192 and six filters of 512 are ~12,300 characters, ~150 KB; so an
            # over-long value still gets our problem+json 400 naming it, not the parser's
            # plain one.
            "max_line_size": MAX_REQUEST_LINE,
        },
    )
    app[SERVICES] = services
    add_routes(app.router)
    services.openapi = msgspec.json.encode(document(OPERATIONS, version=package_version()))
    app.cleanup_ctx.append(_lifecycle)
    return app


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
